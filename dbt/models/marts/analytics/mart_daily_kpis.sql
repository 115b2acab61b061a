-- Question: how active is the platform each day, overall and by device type and country?
-- Distinct counts (active_users) do not add up across rows: read the level you need instead
-- of summing a finer one. activity_date is the UTC day the session started; country_code is
-- where the session was watched.
--
-- Incremental: a run recomputes only the days where the fact changed since this mart's last
-- build (its change data feed: a new, deleted or moved session, or a changed column read
-- here; macros/changed_partitions.sql) and replaces those days in one Delta write
-- (incremental_strategy='replace_where', macros/incremental.sql): a group a day no longer has
-- (its last session on a device deleted) goes with the rest of the day. Equal to a full
-- rebuild after every run (tests/e2e/test_dbt.py compares them). A column added here needs
-- `lakehouse transform --full-refresh --select mart_daily_kpis` once (on_schema_change ignore).

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
        columns=['session_date', 'device_sk', 'country_code', 'user_id', 'watch_seconds', 'is_completed'],
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
        devices.device_type,
        sessions.country_code,
        sessions.user_id,
        sessions.watch_seconds,
        sessions.is_completed

    from sessions
    inner join devices
        on sessions.device_sk = devices.device_sk

),

aggregated as (

    select
        activity_date,
        device_type,
        country_code,
        grouping(device_type) as is_all_devices,
        grouping(country_code) as is_all_countries,
        count(distinct user_id) as active_users,
        count(*) as sessions,
        sum(watch_seconds) as watch_seconds,
        sum(case when is_completed then 1 else 0 end) as completed_sessions

    from joined
    group by grouping sets (
        (activity_date),
        (activity_date, device_type),
        (activity_date, country_code),
        (activity_date, device_type, country_code)
    )

),

final as (

    select
        activity_date,
        case
            when is_all_devices = 1 and is_all_countries = 1 then 'overall'
            when is_all_countries = 1 then 'device'
            when is_all_devices = 1 then 'country'
            else 'device_country'
        end as grain,
        case when is_all_devices = 1 then 'all' else coalesce(device_type, 'unknown') end as device_type,
        case when is_all_countries = 1 then 'all' else coalesce(country_code, 'unknown') end as country_code,
        active_users,
        sessions,
        {{ seconds_to_hours('watch_seconds') }} as watch_hours,
        {{ seconds_to_minutes('watch_seconds') }} / sessions as avg_session_minutes,
        {{ safe_divide('completed_sessions', 'sessions') }} as completion_rate

    from aggregated

)

select * from final
{% if is_incremental() %}{{ replaced_partitions('activity_date', changed_days) }}{% endif %}
