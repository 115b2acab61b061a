{#-
    A model's column checks in one query: not_null, unique, unique_combination,
    accepted_values, accepted_range and relationships, each with dbt's own semantics (a null
    passes accepted_values, accepted_range and relationships; unique ignores nulls;
    unique_combination counts a null like a value, as GROUP BY does), computed in one pass over
    the model instead of one query per check: each foreign key is a left join with the distinct
    keys of the model it references (one row per model row still), counted where it found none.

    Returns one row per check that found failing rows: column_name, check_name and
    failing_rows (for unique and unique_combination, the rows beyond the first of each
    duplicated value; for relationships, the rows whose key the referenced model lacks). dbt
    reports "Got N results" (N checks failed); `lakehouse transform` runs the compiled test
    again and names each one: model.column: check, N rows.

        data_tests:
          - column_checks:
              name: fct_ratings_column_checks
              arguments:
                not_null: [rating_sk, user_sk]
                unique: [rating_sk]
                unique_combination: [[user_id, content_id]]
                accepted_values: {plan: "{{ var('subscription_plans') }}"}
                accepted_range: {rating: {min_value: 1, max_value: 5}}
                relationships: {user_sk: {to: ref('dim_users'), field: user_sk}}
-#}
{% test column_checks(
    model,
    not_null=[],
    unique=[],
    unique_combination=[],
    accepted_values={},
    accepted_range={},
    relationships={}
) %}

{#- (column, check, aggregate over the model) -#}
{%- set checks = [] -%}
{%- for column in not_null -%}
    {%- do checks.append((column, 'not_null', 'count_if(' ~ column ~ ' is null)')) -%}
{%- endfor -%}
{%- for column in unique -%}
    {%- do checks.append((column, 'unique', 'count(' ~ column ~ ') - count(distinct ' ~ column ~ ')')) -%}
{%- endfor -%}
{%- for columns in unique_combination -%}
    {%- set listed = columns | join(', ') -%}
    {%- do checks.append((listed, 'unique_combination', 'count(*) - count(distinct struct(' ~ listed ~ '))')) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set quoted = [] -%}
    {%- for value in values -%}
        {%- do quoted.append("'" ~ (value | string | replace("'", "\\'")) ~ "'") -%}
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
{%- if not checks and not relationships -%}
    {{ exceptions.raise_compiler_error("column_checks on " ~ model ~ ": no check given") }}
{%- endif -%}
{%- set named = [] -%}
{%- for column, check, _expression in checks -%}
    {%- do named.append((column, check, 'check_' ~ loop.index)) -%}
{%- endfor -%}
{%- for column, _reference in relationships.items() -%}
    {%- do named.append((column, 'relationships', 'foreign_key_' ~ loop.index)) -%}
{%- endfor -%}

with

model_rows as (

    select * from {{ model }}

),

{%- for _column, reference in relationships.items() %}

referenced_{{ loop.index }} as (

    select distinct {{ reference.field }} as _referenced_key
    from {{ reference.to }}

),
{%- endfor %}

totals as (

    select
        {%- for _column, _check, expression in checks %}
        {{ expression }} as check_{{ loop.index }}{{ ',' if not loop.last or relationships }}
        {%- endfor %}
        {%- for column, _reference in relationships.items() %}
        count_if(
            model_rows.{{ column }} is not null and referenced_{{ loop.index }}._referenced_key is null
        ) as foreign_key_{{ loop.index }}{{ ',' if not loop.last }}
        {%- endfor %}
    from model_rows
    {%- for column, _reference in relationships.items() %}
    left join referenced_{{ loop.index }}
        on model_rows.{{ column }} = referenced_{{ loop.index }}._referenced_key
    {%- endfor %}

),

results as (

    select
        stack(
            {{ named | length }},
            {%- for column, check, value in named %}
            '{{ column }}', '{{ check }}', {{ value }}{{ ',' if not loop.last }}
            {%- endfor %}
        ) as (column_name, check_name, failing_rows)
    from totals

)

select * from results
where failing_rows > 0

{% endtest %}
