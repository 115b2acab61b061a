{#-
    The high-water mark of a column in a table, as a SQL literal, for
    `where <column> > {{ high_water_mark(relation, '<column>') }}`: the newest value it holds,
    or `default` when it holds none. Evaluated once when the node runs, so the filter is a
    constant that Delta can use to skip files.
-#}
{% macro high_water_mark(relation, column, default="timestamp'1900-01-01 00:00:00'") -%}
    {%- if execute -%}
        {%- set result = run_query("select cast(max(" ~ column ~ ") as string) from " ~ relation) -%}
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


{#- The same for this incremental model's current table (`default` on a full build). -#}
{% macro incremental_high_water_mark(column, default="timestamp'1900-01-01 00:00:00'") -%}
    {%- if is_incremental() -%}
        {{ high_water_mark(this, column, default) }}
    {%- else -%}
        {{ default }}
    {%- endif -%}
{%- endmacro %}


{#-
    High-water marks of an incremental model's upstreams, kept as table properties of the
    model (`lakehouse.high_water.<upstream>`): the newest `_ingested_at` of each upstream that
    the model's last run read. A property, not a column: a column holding an upstream's
    ingestion time would change on every row of the upstream's key at each re-ingestion (and
    with it the rows a MERGE must rewrite).
-#}
{% macro high_water_property(upstream) -%}
    lakehouse.high_water.{{ upstream.identifier }}
{%- endmacro %}


{#- The recorded mark of `upstream` among `properties` (table_properties(this)), as a SQL
    literal; `default` (every row) when none is recorded. -#}
{% macro recorded_high_water(properties, upstream, default="timestamp'1900-01-01 00:00:00'") -%}
    {%- set value = properties.get(high_water_property(upstream)) -%}
    {%- if value is none -%}
        {{ default }}
    {%- else -%}
        timestamp'{{ value }}'
    {%- endif -%}
{%- endmacro %}


{#- post_hook: record the newest `_ingested_at` of each upstream as this run read it (the
    views are pinned to the gate's bronze versions for the whole build), in one SET
    TBLPROPERTIES, none when nothing moved. A run that fails before it leaves the older marks:
    the next run reads more, never less. -#}
{% macro record_high_water_marks(upstreams) %}
    {%- if execute -%}
        {%- set newest = [] -%}
        {%- for upstream in upstreams -%}
            {%- do newest.append("(select cast(max(_ingested_at) as string) from " ~ upstream ~ ")") -%}
        {%- endfor -%}
        {%- set values = run_query("select " ~ newest | join(", ")).rows[0] -%}
        {%- set stored = table_properties(this) -%}
        {%- set moved = [] -%}
        {%- for upstream in upstreams -%}
            {%- set value = values[loop.index0] -%}
            {%- if value is not none and stored.get(high_water_property(upstream)) != value | string -%}
                {%- do moved.append("'" ~ high_water_property(upstream) ~ "' = '" ~ value ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if moved -%}
            alter table {{ this }} set tblproperties ({{ moved | join(', ') }})
        {%- endif -%}
    {%- endif -%}
{% endmacro %}


{#-
    `(left.a <=> right.a and left.b <=> right.b ...)` over `columns`: true when two rows agree
    on every one of them, nulls included (`true` for no column).
-#}
{% macro columns_equal(left, right, columns) -%}
    ({%- for column in columns -%}
        {{ left }}.{{ column }} <=> {{ right }}.{{ column }}{% if not loop.last %} and {% endif %}
    {%- else -%}
        true
    {%- endfor -%})
{%- endmacro %}


{#-
    dbt-spark's MERGE for incremental models, extended with deletes.

    Same SQL as the adapter's spark__get_merge_sql, plus one config:

    `merge_delete_column` (a boolean column of the model's incremental SQL, not of the table):
    a row with it true deletes the stored row with its key (a session that is no longer
    valid) and is never inserted; the others update or insert as usual. The column list is
    the table's, so the flag never lands in it.

    The target is not restricted to the partitions the batch touches: Delta rewrites only the
    files holding a matched row anyway, and finding the partitions first cost a query that
    evaluated the batch twice and joined it with the whole target, the scan it meant to save
    (measured: the README's "Benchmarks", the fact's day MERGE).

    Without that config this is the adapter's MERGE, unchanged.
-#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
  {%- set predicates = [] if incremental_predicates is none else [] + incremental_predicates -%}
  {%- set delete_column = config.get('merge_delete_column') -%}
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

      {% if delete_column -%}
      when matched and DBT_INTERNAL_SOURCE.{{ delete_column }} then delete
      {% endif -%}
      when matched then update set
        {% if update_columns -%}{%- for column_name in update_columns %}
            {{ column_name }} = DBT_INTERNAL_SOURCE.{{ column_name }}
            {%- if not loop.last %}, {%- endif %}
        {%- endfor %}
        {%- else %} * {% endif %}

      {% if delete_column -%}
      {%- set insert_columns = dest_columns | map(attribute='quoted') | list -%}
      when not matched and not DBT_INTERNAL_SOURCE.{{ delete_column }} then insert
        ({{ insert_columns | join(', ') }})
        values (DBT_INTERNAL_SOURCE.{{ insert_columns | join(', DBT_INTERNAL_SOURCE.') }})
      {%- else -%}
      when not matched then insert *
      {%- endif %}
{% endmacro %}


{#-
    incremental_strategy='replace_where': replace whole partitions in one Delta write.

    For a model that recomputes whole partitions of its own from an upstream's changes
    (mart_daily_kpis: every row of the days where the fact changed). It declares the
    partitions its run recomputed with `{{ replaced_partitions(column, partitions) }}` (a
    comment line in its compiled SQL, which the write reads back: the list is known only when
    the model compiles), and the write is

        insert into <target> replace where <column> in (date'...', ...) select ... from <source>

    one commit in which Delta deletes the stored rows of those partitions, a group a day no
    longer has included, and inserts the recomputed ones. Unlike a MERGE it reads the model's
    query once and never joins it with the stored rows. Nothing is written when nothing
    changed (`replace where false` of no row commits nothing); every partition is replaced
    (`true`) when the upstream's changes are unknown.
-#}

{% macro replaced_partitions_mark() %}{{ return('-- lakehouse: replace where ') }}{% endmacro %}

{% macro replaced_partitions(column, partitions) -%}
    {{ replaced_partitions_mark() }}{{ partition_predicate(column, partitions) }}
{%- endmacro %}


{% macro get_replace_where_sql(source, target) %}
    {%- set code = model.get('compiled_code') or '' -%}
    {%- set mark = replaced_partitions_mark() -%}
    {%- if mark not in code -%}
        {{ exceptions.raise_compiler_error(
            this ~ " uses incremental_strategy 'replace_where' but its SQL declares no replaced partitions: "
            ~ "add {{ replaced_partitions(column, partitions) }} to it") }}
    {%- endif -%}
    {%- set predicate = code.split(mark)[1].split('\n')[0] | trim -%}
    {%- set dest_columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | list -%}
    insert into {{ target }} replace where {{ predicate }}
    select {{ dest_columns | join(', ') }} from {{ source }}
{% endmacro %}


{#- dbt-spark's strategy validation and dispatch, with replace_where added (delta only). -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
    {%- if raw_strategy == 'replace_where' -%}
        {%- if file_format != 'delta' -%}
            {{ exceptions.raise_compiler_error(
                "incremental_strategy 'replace_where' needs file_format 'delta', not " ~ file_format) }}
        {%- endif -%}
        {{ return(raw_strategy) }}
    {%- endif -%}
    {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{% endmacro %}


{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
    {%- if strategy == 'replace_where' -%}
        {{ get_replace_where_sql(source, target) }}
    {%- else -%}
        {{ dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) }}
    {%- endif -%}
{% endmacro %}
