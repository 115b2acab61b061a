{#-
    A surrogate key from business columns: md5 of the values joined by '-', with a marker for
    nulls so that (null, 'a') and ('', 'a') differ. Same contract as
    dbt_utils.generate_surrogate_key, written here because no package can be installed.
-#}
{% macro surrogate_key(columns) -%}
    md5(concat_ws('-'
    {%- for column in columns %},
        coalesce(cast({{ column }} as string), '_null_')
    {%- endfor %}
    ))
{%- endmacro %}
