-- Question: which titles perform: most watched, completed, best and most divisively rated, and
-- which are watched a lot but rated low?
-- completion_rate = completed sessions / sessions. Rating statistics count only when a title
-- has at least var min_ratings_for_stats ratings: is_polarised when their standard deviation
-- reaches var polarised_rating_stddev; is_high_engagement_low_rating when the title is in the
-- top var high_engagement_top_share by watch hours and its average rating is below var
-- low_rating_threshold.

with

content as (

    select * from {{ ref('dim_content') }}

),

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

ratings as (

    select * from {{ ref('fct_ratings') }}

),

session_stats as (

    select
        content_sk,
        count(*) as sessions,
        count(distinct user_id) as unique_viewers,
        sum(watch_seconds) as watch_seconds,
        sum(case when is_completed then 1 else 0 end) as completed_sessions

    from sessions
    group by content_sk

),

rating_stats as (

    select
        content_sk,
        count(*) as rating_count,
        avg(rating) as avg_rating,
        stddev_samp(rating) as rating_stddev

    from ratings
    group by content_sk

),

combined as (

    select
        content.content_sk,
        content.content_id,
        content.title,
        content.content_type,
        content.primary_genre,
        coalesce(session_stats.sessions, 0) as sessions,
        coalesce(session_stats.unique_viewers, 0) as unique_viewers,
        {{ seconds_to_hours('coalesce(session_stats.watch_seconds, 0)') }} as watch_hours,
        coalesce(session_stats.completed_sessions, 0) as completed_sessions,
        {{ safe_divide('session_stats.completed_sessions', 'session_stats.sessions') }} as completion_rate,
        coalesce(rating_stats.rating_count, 0) as rating_count,
        cast(rating_stats.avg_rating as double) as avg_rating,
        cast(rating_stats.rating_stddev as double) as rating_stddev

    from content
    left join session_stats
        on content.content_sk = session_stats.content_sk
    left join rating_stats
        on content.content_sk = rating_stats.content_sk

),

ranked as (

    select
        combined.*,
        rank() over (order by combined.watch_hours desc) as engagement_rank,
        percent_rank() over (order by combined.watch_hours desc) as engagement_percentile

    from combined

),

final as (

    select
        content_sk,
        content_id,
        title,
        content_type,
        primary_genre,
        sessions,
        unique_viewers,
        watch_hours,
        completed_sessions,
        completion_rate,
        rating_count,
        avg_rating,
        rating_stddev,
        engagement_rank,
        coalesce(
            rating_count >= {{ var('min_ratings_for_stats') }}
            and rating_stddev >= {{ var('polarised_rating_stddev') }},
            false
        ) as is_polarised,
        coalesce(
            sessions > 0
            and engagement_percentile < {{ var('high_engagement_top_share') }}
            and rating_count >= {{ var('min_ratings_for_stats') }}
            and avg_rating < {{ var('low_rating_threshold') }},
            false
        ) as is_high_engagement_low_rating

    from ranked

)

select * from final
