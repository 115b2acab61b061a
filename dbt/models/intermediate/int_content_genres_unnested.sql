-- A title without genres gets one row with genre 'Unknown', so every title is in the bridge and
-- the weighting factors of a title always sum to 1.

with

content as (

    select * from {{ ref('stg_mongodb__content') }}

),

unnested as (

    select
        content.content_id,
        genre.genre_position_zero_based,
        genre.genre_name

    from content
        {{ unnest_with_position('content.genres', 'genre', 'genre_position', 'genre_name', outer=true) }}

),

final as (

    select
        content_id,
        coalesce(genre_name, 'Unknown') as genre_name,
        coalesce(genre_position_zero_based, 0) + 1 as genre_position,
        count(*) over (partition by content_id) as title_genre_count

    from unnested

)

select * from final
