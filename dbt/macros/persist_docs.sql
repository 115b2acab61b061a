{#-
    Column comments on Delta tables in one statement per table.

    dbt-spark issues one `alter table ... change column ... comment` per column, i.e. one Delta
    commit and one metastore update per documented column; on a busy Thrift server that is
    minutes per build. Spark 4 accepts every column in one ALTER TABLE ... ALTER COLUMN
    statement: one commit per table. The comments are what JDBC clients (BI tools, `describe`)
    show for each column.
-#}
{% macro spark__alter_column_comment(relation, column_dict) %}
  {% if config.get('file_format', validator=validation.any[basestring]) in ['delta', 'hudi', 'iceberg']
        and column_dict | length > 0 %}
    {% set clauses = [] %}
    {% for column_name in column_dict %}
      {% set comment = column_dict[column_name]['description'] | replace("'", "\\'") %}
      {% set quoted = adapter.quote(column_name) if column_dict[column_name]['quote'] else column_name %}
      {% do clauses.append(quoted ~ " comment '" ~ comment ~ "'") %}
    {% endfor %}
    {% set comment_query %}
      alter table {{ relation }} alter column {{ clauses | join(', ') }}
    {% endset %}
    {% do run_query(comment_query) %}
  {% endif %}
{% endmacro %}


{#-
    Column comments only where they changed. dbt-spark comments every documented column after
    every build; a table rebuilt by CREATE OR REPLACE has lost them, but an incremental model
    or a snapshot keeps them, and re-commenting it is one more Delta commit per model on every
    run for nothing. One `describe table` gives the stored comments; the ALTER (one statement,
    above) carries only the columns whose description differs, and is skipped when none does.
-#}
{% macro spark__persist_docs(relation, model, for_relation, for_columns) -%}
  {% if for_columns and config.persist_column_docs() and model.columns %}
    {% set stored = {} %}
    {% for row in run_query('describe table ' ~ relation) %}
      {% if row[0] and not row[0].startswith('#') and row[0] not in stored %}
        {% do stored.update({row[0]: row[2]}) %}
      {% endif %}
    {% endfor %}
    {% set changed = {} %}
    {% for name, column in model.columns.items() %}
      {% if name in stored and column['description'] and stored[name] != column['description'] %}
        {% do changed.update({name: column}) %}
      {% endif %}
    {% endfor %}
    {% do alter_column_comment(relation, changed) %}
  {% endif %}
{% endmacro %}
