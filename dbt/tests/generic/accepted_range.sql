{#-
    Fails for every row whose column lies outside [min_value, max_value] (either bound may be
    omitted). Nulls pass: not_null says whether a null is allowed. Written here because the
    dbt_utils package cannot be installed on this machine.
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

with validation as (

    select {{ column_name }} as value
    from {{ model }}
    where {{ column_name }} is not null

),

errors as (

    select value
    from validation
    where
        false
        {% if min_value is not none %}
            or value < {{ min_value }}
        {% endif %}
        {% if max_value is not none %}
            or value > {{ max_value }}
        {% endif %}

)

select * from errors

{% endtest %}
