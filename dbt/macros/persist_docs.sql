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
