{#-
    The checks of an int_*_validated model, on top of staging's: a row keeps the dq_issue
    staging gave it, else gets the first of its foreign keys that resolves to no row of its
    parent ('orphan_<column>'), as `checked_dq_issue`. `parents` lists [column, parent CTE]
    pairs in the order they are checked; the parent CTE has the same column name.
-#}
{% macro flag_orphans(child, parents) -%}
    select
        {{ child }}.*,
        coalesce(
            {{ child }}.dq_issue,
            case
            {%- for column, parent in parents %}
                when {{ parent }}.{{ column }} is null then 'orphan_{{ column }}'
            {%- endfor %}
            end
        ) as checked_dq_issue

    from {{ child }}
    {%- for column, parent in parents %}
    left join {{ parent }}
        on {{ child }}.{{ column }} = {{ parent }}.{{ column }}
    {%- endfor %}
{%- endmacro %}


{#-
    The join condition that picks the version of a dim_users row valid at `at`: its half-open
    validity interval [valid_from, valid_to) holds the instant. Use after the key equality.
-#}
{% macro version_valid_at(version, at) -%}
    {{ at }} >= {{ version }}.valid_from
        and {{ at }} < {{ version }}.valid_to
{%- endmacro %}
