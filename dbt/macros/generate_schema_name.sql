{#-
    dbt builds and tests in the build schemas `silver_build` and `gold_build`; BI tools read
    `silver` and `gold`, which `lakehouse transform` publishes only when the whole build passed
    (views pinned to the Delta versions that were tested: lakehouse/modeling/publish.py). A model's
    `schema` config names the published layer; the suffix is the var `build_schema_suffix`.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set layer = target.schema if custom_schema_name is none else custom_schema_name -%}
    {{ layer | trim }}{{ var('build_schema_suffix') }}
{%- endmacro %}
