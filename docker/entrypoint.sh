#!/bin/sh
# The lakehouse image's entry point: one image, one role per container.
#
#   thrift     the Spark Thrift Server in the foreground (JDBC/ODBC for BI tools, dbt, `lakehouse sql`):
#              creates the databases and the metastore schema if missing, renders the Spark conf
#   pipeline   one pipeline run against the running stack: lakehouse pipeline --from sources [ARGS]
#   master     a Spark standalone master (SPARK_MASTER_HOST, SPARK_MASTER_PORT, SPARK_MASTER_WEBUI_PORT,
#              SPARK_DEFAULT_CORES)
#   worker     a Spark standalone worker (SPARK_MASTER_URL, SPARK_WORKER_CORES, SPARK_WORKER_MEMORY,
#              SPARK_WORKER_WEBUI_PORT, SPARK_WORKER_DIR)
#   dashboard  Apache Superset in the foreground (the image's `dashboard` target only): sets up its
#              metadata, admin, the Thrift server as its database and the dashboards of dashboards/
#   orchestrator Dagster in the foreground: `dagster dev` (webserver, daemon, the code location
#              lakehouse.orchestration.definitions) on LAKEHOUSE_ORCHESTRATOR_HOST:PORT, its
#              instance in $LAKEHOUSE_HOME/dagster (DAGSTER_HOME)
#   health     the healthcheck of the role this container runs (or of the role named after it)
#   conf       render the Spark conf directory from the environment and print where it is
#   check      print the versions; fail when Java, spark-submit, lakehouse or a baked jar is missing
#              (check dashboard: also Superset's virtualenv; check orchestrator: also the dagster extra)
#   lakehouse  any lakehouse command, e.g.: lakehouse sql "show tables in gold"
#   help       this list
#
# With LAKEHOUSE_DRY_RUN=1 the server roles and pipeline print the command they would run instead
# of running it (that is how the roles are tested outside Docker).
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
state_dir="${LAKEHOUSE_HOME:-$here/../.lakehouse}"
role_file="$state_dir/run/container-role"
roles="thrift, pipeline, master, worker, dashboard, orchestrator, health, conf, check, lakehouse, help"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

remember_role() {
    mkdir -p "$state_dir/run"
    printf '%s\n' "$1" >"$role_file"
}

role="${1:-help}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$role" in
thrift)
    remember_role thrift
    exec python "$here/roles.py" thrift
    ;;
pipeline)
    remember_role pipeline
    if [ "${LAKEHOUSE_DRY_RUN:-0}" = 1 ]; then
        echo "lakehouse pipeline --from sources $*"
        exit 0
    fi
    exec lakehouse pipeline --from sources "$@"
    ;;
dashboard)
    remember_role dashboard
    exec python "$here/roles.py" dashboard
    ;;
orchestrator)
    remember_role orchestrator
    exec python "$here/roles.py" orchestrator
    ;;
master | worker)
    remember_role "$role"
    if [ "${LAKEHOUSE_DRY_RUN:-0}" = 1 ]; then
        exec python -m lakehouse.services.cluster "$role" --print
    fi
    exec python -m lakehouse.services.cluster "$role"
    ;;
health)
    which="${1:-$(cat "$role_file" 2>/dev/null || echo none)}"
    case "$which" in
    thrift)
        # The server listens on every interface in a container; ask it over loopback, with the
        # same credentials (LAKEHOUSE_THRIFT_AUTH/USER/PASSWORD: compose sets auth explicitly,
        # so moving to loopback does not switch it off).
        case "${LAKEHOUSE_THRIFT_HOST:-127.0.0.1}" in
        0.0.0.0 | ::) export LAKEHOUSE_THRIFT_HOST=127.0.0.1 ;;
        esac
        exec lakehouse sql "select 1" >/dev/null
        ;;
    master | worker)
        exec python -m lakehouse.services.cluster health "$which"
        ;;
    dashboard)
        # Superset's /health; on 0.0.0.0 (a container) asked over loopback (dashboard.connect_host).
        exec python "$here/roles.py" dashboard-health
        ;;
    orchestrator)
        # Dagster's /server_info; on 0.0.0.0 (a container) asked over loopback (orchestrator.connect_host).
        exec python "$here/roles.py" orchestrator-health
        ;;
    pipeline)
        exit 0
        ;;
    *)
        echo "health: no server role runs here (role: $which)" >&2
        exit 1
        ;;
    esac
    ;;
conf | check)
    exec python "$here/roles.py" "$role" "$@"
    ;;
lakehouse)
    exec lakehouse "$@"
    ;;
help | -h | --help)
    usage
    ;;
*)
    echo "entrypoint: unknown role '$role': choose from $roles" >&2
    exit 2
    ;;
esac
