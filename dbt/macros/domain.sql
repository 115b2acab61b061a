{#-
    A SQL list of string literals, ('a', 'b'), from one of the domain's value sets in
    dbt_project.yml (vars), so a model's `in` says the same as the tests' accepted_values.
-#}
{% macro sql_values(values) -%}
    ({%- for value in values -%}
        '{{ value }}'{{ ", " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}
