-- Question: which genres does each user segment watch?
-- The segment is the user's version valid when the session started (plan, country) and the
-- user's age on the session's day. A session of a title with several genres counts for each of
-- them in sessions and unique_viewers; weighted_watch_hours spreads its watch time over the
-- genres with the bridge's weighting factor, so it adds up to the segment's total, and
-- share_of_segment_watch_hours is a genre's part of its segment (sums to 1 per segment).

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

bridge as (

    select * from {{ ref('bridge_content_genre') }}

),

segmented as (

    select
        sessions.session_id,
        sessions.user_id,
        sessions.content_sk,
        sessions.watch_seconds,
        users.subscription_plan,
        {{ age_band(age_in_years('users.birth_date', 'sessions.session_date')) }} as age_band,
        users.country_code

    from sessions
    inner join users
        on sessions.user_sk = users.user_sk

),

by_genre as (

    select
        bridge.genre_name,
        segmented.subscription_plan,
        segmented.age_band,
        segmented.country_code,
        count(*) as sessions,
        count(distinct segmented.user_id) as unique_viewers,
        {{ seconds_to_hours('sum(segmented.watch_seconds)') }} as watch_hours,
        {{ seconds_to_hours('sum(segmented.watch_seconds * bridge.weighting_factor)') }} as weighted_watch_hours

    from segmented
    inner join bridge
        on segmented.content_sk = bridge.content_sk
    group by
        bridge.genre_name,
        segmented.subscription_plan,
        segmented.age_band,
        segmented.country_code

),

final as (

    select
        genre_name,
        subscription_plan,
        age_band,
        country_code,
        sessions,
        unique_viewers,
        watch_hours,
        weighted_watch_hours,
        cast(
            weighted_watch_hours
            / sum(weighted_watch_hours) over (partition by subscription_plan, age_band, country_code)
            as double
        ) as share_of_segment_watch_hours,
        rank() over (
            partition by subscription_plan, age_band, country_code
            order by weighted_watch_hours desc
        ) as rank_in_segment

    from by_genre

)

select * from final
