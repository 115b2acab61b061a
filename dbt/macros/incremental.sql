{#-
    The high-water mark of a column in this incremental model's current table, as a SQL
    literal, for `where <column> > {{ incremental_high_water_mark('<column>') }}`. Evaluated
    once when the model runs, so the filter is a constant that Delta can use to skip files.
-#}
{% macro incremental_high_water_mark(column, default="timestamp'1900-01-01 00:00:00'") -%}
    {%- if execute and is_incremental() -%}
        {%- set result = run_query("select cast(max(" ~ column ~ ") as string) from " ~ this) -%}
        {%- set value = result.columns[0].values()[0] if result and result.rows | length > 0 else none -%}
        {%- if value is none -%}
            {{ default }}
        {%- else -%}
            timestamp'{{ value }}'
        {%- endif -%}
    {%- else -%}
        {{ default }}
    {%- endif -%}
{%- endmacro %}


{#-
    dbt-spark's MERGE for incremental models, extended with partition pruning.

    Same SQL as the adapter's spark__get_merge_sql, plus: when a model sets
    `partition_prune_column` (a partition column whose value never changes for a key, such as
    the date a session started), the MERGE condition also restricts the target to the
    partitions that the new rows fall into, as literals (`dest.session_date in (date'...')`).
    Delta then reads and rewrites only those partitions instead of scanning the whole table.
    Without that config this is the adapter's MERGE, unchanged.
-#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
  {%- set predicates = [] if incremental_predicates is none else [] + incremental_predicates -%}
  {%- set prune_column = config.get('partition_prune_column') -%}
  {%- if prune_column -%}
      {%- set partitions = run_query("select distinct cast(" ~ prune_column ~ " as string) from " ~ source) -%}
      {%- set values = partitions.columns[0].values() | reject('none') | list -%}
      {%- if values | length == 0 -%}
          {%- do predicates.append('false') -%}
      {%- else -%}
          {%- set literals = [] -%}
          {%- for value in values | sort -%}
              {%- do literals.append("date'" ~ value ~ "'") -%}
          {%- endfor -%}
          {%- do predicates.append('DBT_INTERNAL_DEST.' ~ prune_column ~ ' in (' ~ literals | join(', ') ~ ')') -%}
      {%- endif -%}
  {%- endif -%}
  {%- set dest_columns = adapter.get_columns_in_relation(target) -%}
  {%- set merge_update_columns = config.get('merge_update_columns') -%}
  {%- set merge_exclude_columns = config.get('merge_exclude_columns') -%}
  {%- set update_columns = get_merge_update_columns(merge_update_columns, merge_exclude_columns, dest_columns) -%}

  {% if unique_key %}
      {% if unique_key is sequence and unique_key is not mapping and unique_key is not string %}
          {% for key in unique_key %}
              {% do predicates.append('DBT_INTERNAL_SOURCE.' ~ key ~ ' = DBT_INTERNAL_DEST.' ~ key) %}
          {% endfor %}
      {% else %}
          {% do predicates.append('DBT_INTERNAL_SOURCE.' ~ unique_key ~ ' = DBT_INTERNAL_DEST.' ~ unique_key) %}
      {% endif %}
  {% else %}
      {% do predicates.append('FALSE') %}
  {% endif %}

  {{ sql_header if sql_header is not none }}

  merge into {{ target }} as DBT_INTERNAL_DEST
      using {{ source }} as DBT_INTERNAL_SOURCE
      on {{ predicates | join(' and ') }}

      when matched then update set
        {% if update_columns -%}{%- for column_name in update_columns %}
            {{ column_name }} = DBT_INTERNAL_SOURCE.{{ column_name }}
            {%- if not loop.last %}, {%- endif %}
        {%- endfor %}
        {%- else %} * {% endif %}

      when not matched then insert *
{% endmacro %}
