-- Question: how do new titles do in their first two weeks? Sessions, viewers and completion
-- in the 14 days after a title was added, for titles added during the data window.
-- Grain: one row per title added in the window.

with

content as (

    select * from {{ ref('dim_content') }}

),

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

window_start as (

    select min(session_date) as first_session_date

    from sessions

),

launches as (

    select
        content.content_sk,
        content.content_id,
        content.title,
        content.content_type,
        content.primary_genre,
        content.added_date

    from content
    cross join window_start
    where content.added_date >= window_start.first_session_date

),

first_two_weeks as (

    select
        launches.content_sk,
        count(sessions.session_id) as sessions,
        count(distinct sessions.user_id) as unique_viewers,
        {{ seconds_to_hours('coalesce(sum(sessions.watch_seconds), 0)') }} as watch_hours,
        avg(case when sessions.is_completed then 1.0 else 0.0 end) as completion_rate

    from launches
    left join sessions
        on launches.content_sk = sessions.content_sk
        and sessions.session_date >= launches.added_date
        and sessions.session_date < date_add(launches.added_date, 14)
    group by launches.content_sk

),

final as (

    select
        launches.content_id,
        launches.title,
        launches.content_type,
        launches.primary_genre,
        launches.added_date,
        first_two_weeks.sessions,
        first_two_weeks.unique_viewers,
        first_two_weeks.watch_hours,
        first_two_weeks.completion_rate

    from launches
    inner join first_two_weeks
        on launches.content_sk = first_two_weeks.content_sk

)

select * from final
order by sessions desc
