with

genres as (

    select * from {{ ref('int_content_genres_unnested') }}

),

aggregated as (

    select
        genre_name,
        count(distinct content_id) as title_count

    from genres
    group by genre_name

),

final as (

    select
        {{ surrogate_key(['genre_name']) }} as genre_sk,
        genre_name,
        title_count

    from aggregated

)

select * from final
