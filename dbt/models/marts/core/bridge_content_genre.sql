-- Bridges the many-to-many between dim_content and dim_genre. weighting_factor = 1 / number of
-- genres of the title, so that a measure spread over genres with it adds up to the title's
-- total (no double counting).

with

genres as (

    select * from {{ ref('int_content_genres_unnested') }}

),

final as (

    select
        {{ surrogate_key(['genres.content_id']) }} as content_sk,
        {{ surrogate_key(['genres.genre_name']) }} as genre_sk,
        genres.content_id,
        genres.genre_name,
        genres.genre_position,
        genres.genre_position = 1 as is_primary_genre,
        1 / cast(genres.title_genre_count as double) as weighting_factor

    from genres

)

select * from final
