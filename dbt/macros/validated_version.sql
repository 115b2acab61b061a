{#-
    A bronze source at the Delta version the quality gate's verdicts cover.

    `lakehouse transform` checks that a passed gate covers every row of each bronze table and
    passes the versions it checked as the var `bronze_versions` (table -> version); a staging
    model reads `{{ validated_version(source('postgres', 'users')) }}`, i.e.
    `bronze.users version as of 12`, so rows extracted after the check never reach silver.
    Without the var (dbt compile, docs) it is the plain source.
-#}
{% macro validated_version(relation) -%}
    {%- set versions = var('bronze_versions', {}) -%}
    {{ relation }}
    {%- if relation.identifier in versions %} version as of {{ versions[relation.identifier] | int }}{% endif -%}
{%- endmacro %}
