-- Business rule: a session is linked to the version of its user that was valid when it
-- started (valid_from <= started_at < valid_to) and to that user only.
-- Returns the sessions linked to another version.

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

violations as (

    select
        sessions.session_id,
        sessions.user_id,
        sessions.started_at,
        users.user_id as version_user_id,
        users.valid_from,
        users.valid_to

    from sessions
    inner join users
        on sessions.user_sk = users.user_sk
    where sessions.user_id != users.user_id
        or not ({{ version_valid_at('users', 'sessions.started_at') }})

)

select * from violations
