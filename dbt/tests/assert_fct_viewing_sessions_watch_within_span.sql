-- Business rule: a session cannot play more than it lasted. Every session in the fact has
-- 0 <= watch_seconds <= ended_at - started_at (pauses make it smaller, never larger).
-- Returns the sessions that break it.

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

violations as (

    select
        session_id,
        started_at,
        ended_at,
        session_span_seconds,
        watch_seconds

    from sessions
    where watch_seconds < 0
        or ended_at < started_at
        or watch_seconds > {{ seconds_between('started_at', 'ended_at') }}

)

select * from violations
