-- Adds the foreign-key checks (defects orphan_user_id, orphan_content_id) to the staging checks
-- (rating outside 1..5). Only valid ratings reach fct_ratings.

with

ratings as (

    select * from {{ ref('stg_postgres__ratings') }}

),

users as (

    select * from {{ ref('stg_postgres__users') }}

),

content as (

    select * from {{ ref('stg_mongodb__content') }}

),

checked as (

    {{ flag_orphans('ratings', [['user_id', 'users'], ['content_id', 'content']]) }}

),

final as (

    select
        user_id,
        content_id,
        rating,
        rated_at,
        rated_date,
        is_edited,
        checked_dq_issue as dq_issue,
        checked_dq_issue is null as is_valid,
        updated_at,
        _ingested_at,
        _batch_id

    from checked

)

select * from final
