{#-
    `dbt run-operation print_session_settings`: the Thrift server's scheduler pool and per-query
    limit for dbt's own session, as the server sees them (set by server_side_parameters in
    profiles.yml; lakehouse/serving/pools.py says why). One `key=value` line each.
-#}
{% macro print_session_settings() %}
    {%- for key in ["spark.sql.thriftserver.scheduler.pool", "spark.sql.thriftServer.queryTimeout"] -%}
        {%- set result = run_query("set " ~ key) -%}
        {{- print(key ~ "=" ~ result.rows[0][1]) -}}
    {%- endfor -%}
{% endmacro %}
