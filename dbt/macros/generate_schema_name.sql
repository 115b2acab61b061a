{#-
    Schemas are exactly the custom name (`silver`, `gold`), not `<target schema>_<custom>` as
    dbt builds them by default: BI tools connect to `jdbc:hive2://host:port/gold`.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
