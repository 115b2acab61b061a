-- Flattens the nested seasons[].episodes[] arrays of the content documents. Movies have no
-- rows.

with

content as (

    select * from {{ ref('stg_mongodb__content') }}

),

seasons as (

    select
        content.content_id,
        season.season.season_number,
        season.season.episodes

    from content
        {{ unnest_with_position('content.seasons', 'season', 'season_position', 'season') }}

),

episodes as (

    select
        seasons.content_id,
        seasons.season_number,
        episode.episode.episode_number,
        nullif(trim(episode.episode.title), '') as episode_title,
        episode.episode.duration_minutes

    from seasons
        {{ unnest_with_position('seasons.episodes', 'episode', 'episode_position', 'episode') }}

),

final as (

    select
        content_id,
        season_number,
        episode_number,
        {{ episode_code('season_number', 'episode_number') }} as episode_code,
        episode_title,
        duration_minutes

    from episodes

)

select * from final
