-- Adds the foreign-key checks staging cannot do: a session whose user_id or content_id is in no
-- bronze table (defects orphan_user_id, orphan_content_id, or a title that went to quarantine)
-- is flagged. is_valid = no dq_issue; only valid sessions reach fct_viewing_sessions. The
-- rejected rows stay queryable here, with their reason.

with

sessions as (

    select * from {{ ref('stg_postgres__viewing_sessions') }}

),

users as (

    select * from {{ ref('stg_postgres__users') }}

),

content as (

    select * from {{ ref('stg_mongodb__content') }}

),

checked as (

    {{ flag_orphans('sessions', [['user_id', 'users'], ['content_id', 'content']]) }}

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
        checked_dq_issue as dq_issue,
        checked_dq_issue is null as is_valid,
        updated_at,
        _ingested_at,
        _batch_id

    from checked

)

select * from final
