-- A rating outside 1..5 (defect rating_out_of_range) is flagged in dq_issue, not dropped.

with

source as (

    select * from {{ validated_version(source('postgres', 'ratings')) }}

),

renamed as (

    select
        user_id,
        trim(content_id) as content_id,
        rating,
        rated_at,
        updated_at,
        _ingested_at,
        _batch_id

    from source

),

final as (

    select
        user_id,
        content_id,
        rating,
        rated_at,
        cast(rated_at as date) as rated_date,
        coalesce(updated_at > rated_at, false) as is_edited,
        case
            when rating is null then 'missing_rating'
            when rating < {{ var('min_rating') }} or rating > {{ var('max_rating') }} then 'rating_out_of_range'
            when rated_at is null then 'missing_rated_at'
        end as dq_issue,
        updated_at,
        _ingested_at,
        _batch_id

    from renamed

)

select * from final
