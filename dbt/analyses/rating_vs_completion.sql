-- Question: do viewers who finish a title rate it higher than those who give up? Average
-- rating by whether the user completed at least one session of the title.
-- Grain: one row per completion group (completed, not completed).

with

ratings as (

    select * from {{ ref('fct_ratings') }}

),

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

user_title_completion as (

    select
        user_id,
        content_sk,
        max(case when is_completed then 1 else 0 end) = 1 as has_completed

    from sessions
    group by user_id, content_sk

),

final as (

    select
        user_title_completion.has_completed,
        count(*) as ratings,
        avg(ratings.rating) as avg_rating,
        stddev_samp(ratings.rating) as rating_stddev

    from ratings
    inner join user_title_completion
        on ratings.user_id = user_title_completion.user_id
        and ratings.content_sk = user_title_completion.content_sk
    group by user_title_completion.has_completed

)

select * from final
