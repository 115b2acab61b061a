-- Question: where does streaming quality hurt the experience? Buffering events per watched
-- hour and completion rate by device type and streaming quality.
-- Grain: one row per (device_type, streaming_quality).

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

devices as (

    select * from {{ ref('dim_device') }}

),

aggregated as (

    select
        devices.device_type,
        sessions.streaming_quality,
        count(*) as sessions,
        sum(sessions.buffering_events) as buffering_events,
        {{ seconds_to_hours('sum(sessions.watch_seconds)') }} as watch_hours,
        avg(sessions.avg_bitrate_kbps) as avg_bitrate_kbps,
        avg(case when sessions.is_completed then 1.0 else 0.0 end) as completion_rate

    from sessions
    inner join devices
        on sessions.device_sk = devices.device_sk
    group by devices.device_type, sessions.streaming_quality

),

final as (

    select
        device_type,
        streaming_quality,
        sessions,
        watch_hours,
        {{ safe_divide('buffering_events', 'watch_hours') }} as buffering_events_per_hour,
        avg_bitrate_kbps,
        completion_rate

    from aggregated

)

select * from final
order by buffering_events_per_hour desc
