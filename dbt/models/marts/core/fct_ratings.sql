-- Ratings with a dq_issue (outside 1..5, orphans; see int_ratings_validated) are not here.
-- Linked to the dim_users version valid when the rating was given.

with

ratings as (

    select * from {{ ref('int_ratings_validated') }}
    where is_valid

),

users as (

    select * from {{ ref('dim_users') }}

),

content as (

    select * from {{ ref('dim_content') }}

),

final as (

    select
        {{ surrogate_key(['ratings.user_id', 'ratings.content_id']) }} as rating_id,
        users.user_sk,
        content.content_sk,
        ratings.user_id,
        ratings.content_id,
        ratings.rating,
        ratings.rated_at,
        ratings.rated_date,
        ratings.is_edited,
        ratings.updated_at

    from ratings
    left join users
        on ratings.user_id = users.user_id
        and {{ version_valid_at('users', 'ratings.rated_at') }}
    left join content
        on ratings.content_id = content.content_id

)

select * from final
