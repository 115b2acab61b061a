{#-
    Tests of an incremental model that look only at the partitions written since its published
    version, where the property they check is partition-local.

    A test with `config: {where: "new_partitions(<partition column>)"}` checks, on an
    incremental run, only the rows of the partitions where a row was inserted or updated since
    the version the published view reads (`gold.x` is `select * from gold_build.x version as of
    N`, lakehouse/modeling/publish.py): every row of version N passed the same test before it
    was published, and a partition no write touched since still holds exactly those rows. So a
    row-level check (not_null, accepted_values, accepted_range: a row passes or fails on its own
    values) over the new partitions says what it would say over the whole table. Never for
    unique, relationships or singular tests: a new row can duplicate an old one elsewhere, a
    parent can lose the key an old row references.

    Every partition is checked (the `where` becomes `true`) when any link of that argument is
    missing: the last published build ran another dbt project (the var
    published_with_this_project, set by `lakehouse transform`: an edited test has not seen the
    old rows), no published view pins a version, or the table's change data feed does not hold
    every change since (a full refresh, a log cleaned up: macros/changed_partitions.sql). A run
    that failed its tests published nothing, so its partitions are still new to the next run.
-#}

{#- dbt's get_where_subquery (the relation a test reads), reading the `new_partitions(...)`
    form of `where`; any other `where` is dbt's. -#}
{% macro spark__get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if not where -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set where = where | trim -%}
    {%- if where.startswith('new_partitions(') and where.endswith(')') -%}
        {%- set column = where[15:-1] | trim -%}
        {%- set where = partition_predicate(column, partitions_written_since_published(relation, column)) -%}
    {%- endif -%}
    {%- set filtered -%}
        (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- endset -%}
    {{ return(filtered) }}
{%- endmacro %}


{#- The version of `relation` (a build table) that its published view reads, or none. -#}
{% macro published_version(relation) %}
    {%- set schema = relation.schema -%}
    {%- set suffix = var('build_schema_suffix') -%}
    {%- if not schema.endswith(suffix) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set published = adapter.get_relation(relation.database, schema[:-(suffix | length)], relation.identifier) -%}
    {%- if published is none or published.type != 'view' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = run_query("show create table " ~ published).columns[0].values()[0] | lower -%}
    {%- set marker = relation.schema ~ '.' ~ relation.identifier ~ ' version as of ' -%}
    {%- if marker not in text -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set digits = text.split(marker, 1)[1].split()[0] -%}
    {{ return(digits | int if digits.isdigit() else none) }}
{% endmacro %}


{#- The partitions ('YYYY-MM-DD' strings) of the rows inserted or updated in `relation` since
    its published version; none when every partition must be read (see above). -#}
{% macro partitions_written_since_published(relation, partition_column) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not var('published_with_this_project', false) -%}
        {{ log(model.name ~ ": the published builds ran another dbt project (or none): every partition read",
               info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set since = published_version(relation) -%}
    {%- if since is none -%}
        {{ log(model.name ~ ": no published view pins a version of " ~ relation ~ ": every partition read",
               info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set current = _feed_covers(relation, since, model.name) -%}
    {%- if current is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if current == since -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set written -%}
        select distinct cast({{ partition_column }} as string)
        from table_changes('{{ relation }}', {{ since + 1 }}, {{ current }})
        where _change_type in ('insert', 'update_postimage')
    {%- endset -%}
    {%- set partitions = run_query(written).columns[0].values() | reject('none') | list | sort -%}
    {{ log(model.name ~ ": " ~ partitions | length ~ " partitions of " ~ relation ~ " written since version "
           ~ since ~ " (published)", info=true) }}
    {{ return(partitions) }}
{% endmacro %}
