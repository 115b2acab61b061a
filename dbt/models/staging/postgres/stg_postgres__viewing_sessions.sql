-- A view (as every staging model): an incremental reader such as fct_viewing_sessions filters
-- it on _ingested_at, which reaches bronze's scan, so only the new files are read. Rows are
-- flagged here, not dropped: dq_issue names the first rule a row breaks (null when the row is
-- clean). Foreign keys are checked in int_viewing_sessions_validated (staging does not join);
-- the facts keep only rows without an issue.

with

source as (

    select * from {{ validated_version(source('postgres', 'viewing_sessions')) }}

),

renamed as (

    select
        session_id,
        user_id,
        trim(content_id) as content_id,
        nullif(trim(episode), '') as episode_code,
        started_at,
        ended_at,
        watch_seconds,
        coalesce(lower(trim(device_type)), 'unknown') as device_type,
        coalesce(trim(os), 'unknown') as os_name,
        trim(app_version) as app_version,
        upper(trim(streaming_quality)) as streaming_quality,
        avg_bitrate_kbps,
        buffering_events,
        completed as is_completed,
        upper(trim(country)) as country_code,
        updated_at,
        _ingested_at,
        _batch_id

    from source

),

measured as (

    select
        renamed.*,
        cast(renamed.started_at as date) as session_date,
        {{ episode_code_part('renamed.episode_code', 'season') }} as season_number,
        {{ episode_code_part('renamed.episode_code', 'episode') }} as episode_number,
        {{ seconds_between('renamed.started_at', 'renamed.ended_at') }} as session_span_seconds

    from renamed

),

final as (

    select
        session_id,
        user_id,
        content_id,
        episode_code,
        season_number,
        episode_number,
        session_date,
        started_at,
        ended_at,
        session_span_seconds,
        watch_seconds,
        device_type,
        os_name,
        app_version,
        streaming_quality,
        avg_bitrate_kbps,
        buffering_events,
        is_completed,
        country_code,
        case
            when watch_seconds is null then 'missing_watch_seconds'
            when ended_at is null then 'missing_ended_at'
            when watch_seconds < 0 then 'negative_watch_seconds'
            when watch_seconds > {{ var('max_session_seconds') }} then 'absurd_watch_seconds'
            when ended_at < started_at then 'ended_before_started'
            when watch_seconds > session_span_seconds then 'watch_exceeds_span'
        end as dq_issue,
        updated_at,
        _ingested_at,
        _batch_id

    from measured

)

select * from final
