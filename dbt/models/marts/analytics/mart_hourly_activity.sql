-- Question: how many sessions start in each UTC hour of each day, and how long are they, by
-- device type? The daily layer of mart_viewing_patterns (which averages it over weekdays), and
-- a chart of its own (a day's viewing curve).
--
-- Incremental like mart_daily_kpis: a run recomputes only the days where the fact changed
-- since this mart's last build (its change data feed, macros/changed_partitions.sql) and
-- replaces those days in one Delta write (incremental_strategy='replace_where'). Equal to a
-- full rebuild after every run (tests/e2e/test_dbt.py compares them). A column added here
-- needs `lakehouse transform --full-refresh --select mart_hourly_activity` once.

{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        on_schema_change='ignore',
        post_hook="{{ record_upstream_version(ref('fct_viewing_sessions')) }}",
    )
}}

{% if is_incremental() %}
    {%- set changed_days = changed_partitions(
        ref('fct_viewing_sessions'),
        key='session_id',
        partition_column='session_date',
        columns=['session_date', 'started_hour', 'device_sk', 'watch_seconds'],
    ) %}
{% endif %}

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}
    {% if is_incremental() %}{{ partition_filter('session_date', changed_days) }}{% endif %}

),

devices as (

    select * from {{ ref('dim_device') }}

),

joined as (

    select
        sessions.session_date as activity_date,
        sessions.started_hour,
        devices.device_type,
        sessions.watch_seconds

    from sessions
    inner join devices
        on sessions.device_sk = devices.device_sk

),

final as (

    select
        activity_date,
        started_hour,
        device_type,
        count(*) as sessions,
        sum(watch_seconds) as watch_seconds,
        {{ seconds_to_hours('sum(watch_seconds)') }} as watch_hours

    from joined
    group by
        activity_date,
        started_hour,
        device_type

)

select * from final
{% if is_incremental() %}{{ replaced_partitions('activity_date', changed_days) }}{% endif %}
