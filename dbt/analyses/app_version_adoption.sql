-- Question: how fast do viewers move to a new app version? Share of each day's sessions per
-- app version.
-- Grain: one row per (day, app_version).

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

daily as (

    select
        session_date,
        app_version,
        count(*) as sessions

    from sessions
    group by session_date, app_version

),

final as (

    select
        session_date,
        app_version,
        sessions,
        {{ safe_divide('sessions', 'sum(sessions) over (partition by session_date)') }} as share_of_day

    from daily

)

select * from final
order by session_date, app_version
