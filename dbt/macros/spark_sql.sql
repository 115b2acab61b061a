{#- Spark-specific SQL used by more than one model, in one place. -#}

{#- One row per day from start_date to end_date (inclusive), column date_day. -#}
{% macro date_spine(start_date, end_date) -%}
    select explode(sequence(date'{{ start_date }}', date'{{ end_date }}', interval 1 day)) as date_day
{%- endmacro %}

{#-
    Unnest an array column into rows with the element's 1-based position:
    `from t {{ unnest_with_position('t.genres', 'g', 'genre_position', 'genre_name') }}`.
    Arrays that are null or empty give no row (use outer=true to keep the row with nulls).
-#}
{% macro unnest_with_position(array_expression, alias, position_column, value_column, outer=false) -%}
    lateral view {{ 'outer ' if outer }}posexplode({{ array_expression }}) {{ alias }} as {{ position_column }}_zero_based, {{ value_column }}
{%- endmacro %}

{#- Seconds between two timestamps (null when either is null). -#}
{% macro seconds_between(start_column, end_column) -%}
    (unix_timestamp({{ end_column }}) - unix_timestamp({{ start_column }}))
{%- endmacro %}

{#- Season or episode number from an episode code such as 'S01E03' (null when not that shape). -#}
{% macro episode_code_part(code_column, part) -%}
    {%- set group = 1 if part == 'season' else 2 -%}
    cast(nullif(regexp_extract({{ code_column }}, '^S([0-9]+)E([0-9]+)$', {{ group }}), '') as int)
{%- endmacro %}

{#- Whole years between a birth date and a date (null when the birth date is unknown). -#}
{% macro age_in_years(birth_date_column, as_of_column) -%}
    cast(floor(months_between({{ as_of_column }}, {{ birth_date_column }}) / 12) as int)
{%- endmacro %}

{#- Marketing age bands from an age in years. -#}
{% macro age_band(age_column) -%}
    case
        when {{ age_column }} is null then 'unknown'
        when {{ age_column }} < 25 then '18-24'
        when {{ age_column }} < 35 then '25-34'
        when {{ age_column }} < 45 then '35-44'
        when {{ age_column }} < 55 then '45-54'
        when {{ age_column }} < 65 then '55-64'
        else '65+'
    end
{%- endmacro %}

{#- numerator / denominator as a double, null when the denominator is 0 or null. -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}

{#- The far-future end of a current SCD2 version, so that validity is a half-open interval. -#}
{% macro open_valid_to() -%}
    timestamp'9999-12-31 23:59:59'
{%- endmacro %}

{#- The start of the first SCD2 version: no source history exists before the first snapshot. -#}
{% macro first_valid_from() -%}
    timestamp'1900-01-01 00:00:00'
{%- endmacro %}

{#- An array of strings trimmed, without nulls, blanks and repeats (order kept). -#}
{% macro clean_string_array(array_column) -%}
    array_distinct(filter(transform({{ array_column }}, value -> trim(value)), value -> value is not null and value != ''))
{%- endmacro %}

{#- The episode code used by the sessions source, e.g. season 1 episode 3 -> 'S01E03'. -#}
{% macro episode_code(season_column, episode_column) -%}
    format_string('S%02dE%02d', {{ season_column }}, {{ episode_column }})
{%- endmacro %}

{#- Join an array of strings into one text value (BI tools do not read arrays). -#}
{% macro array_to_text(array_column, separator=', ') -%}
    array_join({{ array_column }}, '{{ separator }}')
{%- endmacro %}

{#-
    Seconds as hours or minutes, in double precision. (`x / 3600.0` would be decimal
    arithmetic in Spark, rounded to 6 decimals.)
-#}
{% macro seconds_to_hours(seconds_expression) -%}
    (cast({{ seconds_expression }} as double) / 3600)
{%- endmacro %}

{% macro seconds_to_minutes(seconds_expression) -%}
    (cast({{ seconds_expression }} as double) / 60)
{%- endmacro %}


{#- One bigint for a pair of numbers below 2^31 (first in the high 32 bits): an aggregation
    grouped on one bigint is cheaper than on two columns. pair_key_first/second take it apart. -#}
{% macro pair_key(first_column, second_column) -%}
    shiftleft(cast({{ first_column }} as bigint), 32) + cast({{ second_column }} as bigint)
{%- endmacro %}

{% macro pair_key_first(key_column) -%}
    shiftright({{ key_column }}, 32)
{%- endmacro %}

{% macro pair_key_second(key_column) -%}
    ({{ key_column }} & 4294967295)
{%- endmacro %}
