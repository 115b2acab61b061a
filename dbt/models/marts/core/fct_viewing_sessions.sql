-- Grain: one row per valid viewing session (session_id). Sessions with a dq_issue (see
-- int_viewing_sessions_validated: bad durations, orphans) are not here.
-- Linked to the dim_users version valid when the session started (started_at in
-- [valid_from, valid_to)), to the title, and to the device profile.
-- Incremental: MERGE on session_id. A run reads only sessions whose bronze version is newer
-- than the newest one already here (_ingested_at > high-water mark), i.e. new sessions and
-- sessions the source updated after the fact, and rewrites only the session_date partitions
-- those rows fall into (partition_prune_column, macros/incremental.sql); session_date comes
-- from started_at, which never changes for a session.

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='session_id',
        partition_by=['session_date'],
        partition_prune_column='session_date',
        on_schema_change='append_new_columns',
    )
}}

with

sessions as (

    select * from {{ ref('int_viewing_sessions_validated') }}
    where is_valid
    {% if is_incremental() %}
        and _ingested_at > {{ incremental_high_water_mark('_ingested_at') }}
    {% endif %}

),

users as (

    select * from {{ ref('dim_users') }}

),

content as (

    select * from {{ ref('dim_content') }}

),

episodes as (

    select * from {{ ref('int_content_episodes_unnested') }}

),

devices as (

    select * from {{ ref('dim_device') }}

),

joined as (

    select
        sessions.session_id,
        sessions.session_date,
        users.user_sk,
        content.content_sk,
        devices.device_sk,
        sessions.user_id,
        sessions.content_id,
        sessions.episode_code,
        sessions.season_number,
        sessions.episode_number,
        sessions.country_code,
        sessions.started_at,
        sessions.ended_at,
        extract(hour from sessions.started_at) as started_hour,
        sessions.session_span_seconds,
        sessions.watch_seconds,
        coalesce(episodes.duration_minutes, content.runtime_minutes) * 60 as content_duration_seconds,
        sessions.is_completed,
        sessions.streaming_quality,
        sessions.avg_bitrate_kbps,
        sessions.buffering_events,
        sessions.app_version,
        sessions.updated_at,
        sessions._ingested_at

    from sessions
    left join users
        on sessions.user_id = users.user_id
        and sessions.started_at >= users.valid_from
        and sessions.started_at < users.valid_to
    left join content
        on sessions.content_id = content.content_id
    left join episodes
        on sessions.content_id = episodes.content_id
        and sessions.season_number = episodes.season_number
        and sessions.episode_number = episodes.episode_number
    left join devices
        on sessions.device_type = devices.device_type
        and sessions.os_name = devices.os_name

),

final as (

    select
        session_id,
        session_date,
        user_sk,
        content_sk,
        device_sk,
        user_id,
        content_id,
        episode_code,
        season_number,
        episode_number,
        country_code,
        started_at,
        ended_at,
        started_hour,
        session_span_seconds,
        watch_seconds,
        content_duration_seconds,
        cast(round({{ safe_divide('watch_seconds', 'content_duration_seconds') }}, 4) as double) as completion_ratio,
        is_completed,
        streaming_quality,
        avg_bitrate_kbps,
        buffering_events,
        app_version,
        updated_at,
        _ingested_at

    from joined

)

select * from final
