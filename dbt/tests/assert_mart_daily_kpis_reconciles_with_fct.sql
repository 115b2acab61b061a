-- Reconciliation: the 'overall' rows of mart_daily_kpis add up to the fact table (sessions
-- and watch time), and every finer grain adds up to the same sessions per day.
-- Returns the days and grains that disagree.

with

kpis as (

    select * from {{ ref('mart_daily_kpis') }}

),

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

fact_days as (

    select
        session_date as activity_date,
        count(*) as sessions,
        {{ seconds_to_hours('sum(watch_seconds)') }} as watch_hours

    from sessions
    group by session_date

),

kpi_days as (

    select
        activity_date,
        grain,
        sum(sessions) as sessions,
        sum(watch_hours) as watch_hours

    from kpis
    group by activity_date, grain

),

violations as (

    select
        kpi_days.activity_date,
        kpi_days.grain,
        kpi_days.sessions as kpi_sessions,
        fact_days.sessions as fact_sessions

    from kpi_days
    full outer join fact_days
        on kpi_days.activity_date = fact_days.activity_date
    where kpi_days.sessions is null
        or fact_days.sessions is null
        or kpi_days.sessions != fact_days.sessions
        or abs(kpi_days.watch_hours - fact_days.watch_hours) > 1e-6

)

select * from violations
