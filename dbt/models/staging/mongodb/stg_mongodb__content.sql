-- Cleaning: a missing title (defect missing_title) gets a placeholder and a flag; genres are
-- trimmed and deduplicated; movie runtime is kept for movies only; fields the bronze contract
-- did not know (schema drift) stay available as JSON. Nested seasons are flattened in
-- int_content_episodes_unnested.

with

source as (

    select * from {{ validated_version(source('mongodb', 'content')) }}

),

renamed as (

    select
        trim(content_id) as content_id,
        nullif(trim(title), '') as source_title,
        lower(trim(type)) as content_type,
        {{ clean_string_array('genres') }} as genres,
        release_year,
        duration_minutes,
        seasons,
        {{ clean_string_array('`cast`') }} as cast_members,
        nullif(trim(director), '') as director,
        lower(trim(language)) as language_code,
        upper(trim(country)) as production_country_code,
        nullif(trim(maturity_rating), '') as maturity_rating,
        added_at,
        updated_at,
        _rescued_data,
        _ingested_at,
        _batch_id

    from source

),

final as (

    select
        content_id,
        coalesce(source_title, concat('Untitled (', content_id, ')')) as title,
        source_title is null as is_title_missing,
        content_type,
        genres,
        release_year,
        case when content_type = 'movie' then duration_minutes end as runtime_minutes,
        seasons,
        cast_members,
        director,
        language_code,
        production_country_code,
        maturity_rating,
        added_at,
        updated_at,
        _rescued_data is not null as has_rescued_fields,
        _rescued_data as rescued_fields_json,
        _ingested_at,
        _batch_id

    from renamed

)

select * from final
