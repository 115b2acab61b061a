-- Question: who binge-watches, and which series make them? Users who watched at least three
-- episodes of the same series on one day.
-- Grain: one row per (user, series, day) with three or more episodes.

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

content as (

    select * from {{ ref('dim_content') }}

),

episode_days as (

    select
        sessions.user_id,
        sessions.content_sk,
        sessions.session_date,
        count(distinct sessions.episode_code) as episodes_watched,
        {{ seconds_to_hours('sum(sessions.watch_seconds)') }} as watch_hours

    from sessions
    where sessions.episode_code is not null
    group by sessions.user_id, sessions.content_sk, sessions.session_date

),

final as (

    select
        episode_days.user_id,
        content.content_id,
        content.title,
        episode_days.session_date,
        episode_days.episodes_watched,
        episode_days.watch_hours

    from episode_days
    inner join content
        on episode_days.content_sk = content.content_sk
    where episode_days.episodes_watched >= 3

)

select * from final
order by episodes_watched desc, watch_hours desc
