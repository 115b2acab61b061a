{#-
    A model's column checks in one query: not_null, unique, accepted_values and accepted_range,
    each with dbt's own semantics (a null passes accepted_values and accepted_range; unique
    ignores nulls), computed in one aggregate over the model instead of one query per check.

    Returns one row per check that found failing rows: column_name, check_name and
    failing_rows (for unique, the rows beyond the first of each duplicated value). dbt reports
    "Got N results" (N checks failed); `lakehouse transform` runs the compiled test again and
    names each one: model.column: check, N rows.

        data_tests:
          - column_checks:
              name: dim_users_column_checks
              arguments:
                not_null: [user_sk, user_id]
                unique: [user_sk]
                accepted_values: {plan: "{{ var('subscription_plans') }}"}
                accepted_range: {rating: {min_value: 1, max_value: 5}}
-#}
{% test column_checks(model, not_null=[], unique=[], accepted_values={}, accepted_range={}) %}

{%- set checks = [] -%}
{%- for column in not_null -%}
    {%- do checks.append((column, 'not_null', 'count_if(' ~ column ~ ' is null)')) -%}
{%- endfor -%}
{%- for column in unique -%}
    {%- do checks.append((column, 'unique', 'count(' ~ column ~ ') - count(distinct ' ~ column ~ ')')) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set quoted = [] -%}
    {%- for value in values -%}
        {%- do quoted.append("'" ~ value ~ "'") -%}
    {%- endfor -%}
    {%- do checks.append((column, 'accepted_values', 'count_if(' ~ column ~ ' not in (' ~ quoted | join(', ') ~ '))')) -%}
{%- endfor -%}
{%- for column, bounds in accepted_range.items() -%}
    {%- set outside = [] -%}
    {%- if bounds.get('min_value') is not none -%}
        {%- do outside.append(column ~ ' < ' ~ bounds.min_value) -%}
    {%- endif -%}
    {%- if bounds.get('max_value') is not none -%}
        {%- do outside.append(column ~ ' > ' ~ bounds.max_value) -%}
    {%- endif -%}
    {%- do checks.append((column, 'accepted_range', 'count_if(' ~ outside | join(' or ') ~ ')')) -%}
{%- endfor -%}
{%- if not checks -%}
    {{ exceptions.raise_compiler_error("column_checks on " ~ model ~ ": no check given") }}
{%- endif -%}

with totals as (

    select
        {%- for _column, _check, expression in checks %}
        {{ expression }} as check_{{ loop.index }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ model }}

),

results as (

    select
        stack(
            {{ checks | length }},
            {%- for column, check, _expression in checks %}
            '{{ column }}', '{{ check }}', check_{{ loop.index }}{{ ',' if not loop.last }}
            {%- endfor %}
        ) as (column_name, check_name, failing_rows)
    from totals

)

select * from results
where failing_rows > 0

{% endtest %}
