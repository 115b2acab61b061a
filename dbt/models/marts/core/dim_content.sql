-- Series carry their season and episode counts from the flattened documents; genres are a
-- readable list here, and a proper many-to-many through bridge_content_genre.

with

content as (

    select * from {{ ref('stg_mongodb__content') }}

),

episodes as (

    select * from {{ ref('int_content_episodes_unnested') }}

),

genres as (

    select * from {{ ref('int_content_genres_unnested') }}

),

episode_counts as (

    select
        content_id,
        count(distinct season_number) as season_count,
        count(*) as episode_count,
        sum(duration_minutes) as series_runtime_minutes

    from episodes
    group by content_id

),

primary_genres as (

    select
        content_id,
        genre_name as primary_genre

    from genres
    where genre_position = 1

),

final as (

    select
        {{ surrogate_key(['content.content_id']) }} as content_sk,
        content.content_id,
        content.title,
        content.is_title_missing,
        content.content_type,
        content.release_year,
        content.runtime_minutes,
        coalesce(episode_counts.season_count, 0) as season_count,
        coalesce(episode_counts.episode_count, 0) as episode_count,
        episode_counts.series_runtime_minutes,
        primary_genres.primary_genre,
        {{ array_to_text('content.genres') }} as genre_list,
        content.director,
        size(content.cast_members) as cast_size,
        content.language_code,
        content.production_country_code,
        content.maturity_rating,
        content.added_at,
        cast(content.added_at as date) as added_date,
        content.updated_at,
        content.has_rescued_fields

    from content
    left join episode_counts
        on content.content_id = episode_counts.content_id
    left join primary_genres
        on content.content_id = primary_genres.content_id

)

select * from final
