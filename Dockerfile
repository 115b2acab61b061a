# syntax=docker/dockerfile:1
# The lakehouse image: Python 3.11, Java 17, the pinned Python dependencies (pyspark, dbt,
# Great Expectations), and every Spark jar baked in at build time, so that nothing is downloaded
# when a container runs. One image, one role per container (docker/entrypoint.sh):
# thrift (default), pipeline, master, worker, orchestrator (Dagster: the dagster extra,
# requirements-dagster.lock, is in the image; about 55 small packages, so no target of its own).
#
#   docker build -t lakehouse:0.1.0 .
#   docker run --rm lakehouse:0.1.0 check        # versions, and every baked jar is there
#
# Two targets: `lakehouse` (the last stage, so the default) and `dashboard`, the same image plus
# Apache Superset's own virtualenv (dashboards/requirements.lock, about 825 MB) for the compose
# stack's superset service (role `dashboard`); the lakehouse image stays without it.
#
#   docker build --target dashboard -t lakehouse-dashboard:0.1.0 .
#
# Layers go from what changes least to what changes most: system packages, the locked Python
# dependencies, the Spark jars (only conf/lakehouse.yaml's spark.packages decides them), and
# last the project's code, so a code change rebuilds only the last two layers. The Thrift
# server's password provider (tools/thrift-auth) is compiled in a separate stage with a JDK,
# so the image itself carries only a JRE.

# Where the dashboard target keeps Superset's virtualenv (dashboard.venv_root): install.py puts
# it in venv-<digest of the lock> under this directory.
ARG SUPERSET_VENV_ROOT=/opt/lakehouse-cache/superset

FROM python:3.11-slim-bookworm AS base

ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Java 17 for Spark (a JRE is enough) and tini as PID 1 (signals, zombie reaping). Slim images
# lack /usr/share/man/man1, which the JRE's post-install script needs.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        openjdk-17-jre-headless=17.0.* \
        tini=0.19.* \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GX_ANALYTICS_ENABLED=false \
    LAKEHOUSE_HOME=/var/lib/lakehouse \
    LAKEHOUSE_CACHE_DIR=/opt/lakehouse-cache \
    LAKEHOUSE_SPARK_WAREHOUSE_DIR=file:///var/lib/lakehouse/warehouse

# A non-root user owns the state directory. The warehouse, reports and dagster (Dagster's
# instance, DAGSTER_HOME) directories exist in the image so that a new named volume mounted
# there starts owned by that user.
RUN groupadd --system --gid 10001 lakehouse \
    && useradd --system --uid 10001 --gid lakehouse --create-home --home-dir /home/lakehouse \
        --shell /usr/sbin/nologin lakehouse \
    && mkdir -p /var/lib/lakehouse/warehouse /var/lib/lakehouse/reports /var/lib/lakehouse/dagster \
    && chown -R lakehouse:lakehouse /var/lib/lakehouse

WORKDIR /opt/lakehouse

# 1. The locked Python dependencies: rebuilt only when requirements.lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# 2. The Spark jars (Delta, PostgreSQL JDBC) from Maven Central into LAKEHOUSE_CACHE_DIR, each
#    checked against its published SHA-1. Needs only the config loader and the resolver. The
#    throw-away LAKEHOUSE_HOME keeps the config loader's generated local password out of the image.
COPY conf/lakehouse.yaml conf/
COPY lakehouse/__init__.py lakehouse/config.py lakehouse/errors.py lakehouse/
COPY lakehouse/runtime lakehouse/runtime
RUN LAKEHOUSE_HOME=/tmp/jar-bake python -c "from lakehouse.config import load_config; \
from lakehouse.runtime.jars import resolve_jars; c = load_config(); \
print(len(resolve_jars(c.jar_dir, c.spark.packages, c.spark.maven_repo)), 'jars in', c.jar_dir)" \
    && rm -rf /tmp/jar-bake

# The Thrift server's Java modules, compiled with javac against pip's pyspark jars into
# LAKEHOUSE_CACHE_DIR: the auth provider (hive.server2.authentication=CUSTOM) and the SQL
# lockdown extension. Only the jars go into the image.
FROM base AS thrift-auth
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jdk-headless=17.0.* \
    && rm -rf /var/lib/apt/lists/*
COPY tools/thrift-auth tools/thrift-auth
COPY tools/thrift-lockdown tools/thrift-lockdown
COPY lakehouse/serving lakehouse/serving
RUN LAKEHOUSE_HOME=/tmp/auth-bake python -c "from lakehouse.config import load_config; \
from lakehouse.serving.auth import build_provider; from lakehouse.serving.lockdown import build_extension; \
c = load_config(); print(build_provider(c), build_extension(c))" \
    && rm -rf /tmp/auth-bake

# Superset's virtualenv, installed from its lock by the same code as `lakehouse dashboard up`
# (lakehouse/dashboards/install.py), into SUPERSET_VENV_ROOT. Rebuilt when the lock or one of
# the four modules it copies changes; pip's cache (a BuildKit cache mount, not a layer) then
# spares the download of the 825 MB again.
FROM base AS superset-venv
ARG SUPERSET_VENV_ROOT
COPY dashboards/requirements.lock dashboards/
COPY lakehouse/__init__.py lakehouse/config.py lakehouse/errors.py lakehouse/processes.py lakehouse/
COPY lakehouse/dashboards/__init__.py lakehouse/dashboards/install.py lakehouse/dashboards/
RUN --mount=type=cache,target=/root/.cache/pip \
    env -u PIP_NO_CACHE_DIR LAKEHOUSE_HOME=/tmp/superset-bake LAKEHOUSE_DASHBOARD_VENV_ROOT="${SUPERSET_VENV_ROOT}" \
    python -c "from lakehouse.config import load_config; \
from lakehouse.dashboards.install import ensure_installed; print(ensure_installed(load_config(), print))" \
    && rm -rf /tmp/superset-bake

# The lakehouse image, the base of both targets.
FROM base AS app
# The dagster extra (requirements-dagster.lock: what dagster, dagster-webserver and dagster-dbt
# add to requirements.lock) for the orchestrator role, in the main image rather than a target
# of its own: it is small next to Spark and dbt, and every lakehouse container can then run
# `dagster job execute` too. Its own layer, so the build stages above do not depend on it;
# requirements.lock as constraints: it cannot move a pin of the main lock.
COPY requirements-dagster.lock ./
RUN pip install -r requirements-dagster.lock -c requirements.lock
COPY --from=thrift-auth /opt/lakehouse-cache/thrift-auth /opt/lakehouse-cache/thrift-auth
COPY --from=thrift-auth /opt/lakehouse-cache/thrift-lockdown /opt/lakehouse-cache/thrift-lockdown

# 3. The project. Installed editable on purpose: the package finds conf/, jobs/, dbt/ and
#    expectations/ next to itself (/opt/lakehouse), exactly as in a development checkout.
#    `check` fails the build when Java, spark-submit, lakehouse, a jar, the auth provider or the
#    dagster extra is missing.
COPY . .
RUN pip install --no-deps -e . \
    && chmod 0755 docker/entrypoint.sh \
    && docker/entrypoint.sh check orchestrator

USER 10001:10001
# Thrift (JDBC/ODBC), Spark master RPC, master web UI, worker web UI, Dagster's web UI.
EXPOSE 10000 7077 8080 8081 3000
# The healthcheck of the role this container runs: the Thrift server answers `select 1`, the
# master is ALIVE, the worker is registered with a master, Superset answers /health, Dagster's
# webserver answers /server_info.
HEALTHCHECK --interval=15s --timeout=30s --start-period=180s --retries=5 \
    CMD ["/opt/lakehouse/docker/entrypoint.sh", "health"]
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/lakehouse/docker/entrypoint.sh"]
CMD ["thrift"]

# Target `dashboard`: the lakehouse image plus Superset's virtualenv. --link keeps the 825 MB
# layer apart from the layers below it: a code change does not copy it again. Superset's
# metadata and the secrets it generates (SECRET_KEY, the admin's password) live in
# /var/lib/lakehouse/superset and /var/lib/lakehouse/secrets, created here (as the lakehouse
# user, secrets owner-only) so that new named volumes mounted there start owned by that user.
FROM app AS dashboard
ARG SUPERSET_VENV_ROOT
COPY --link --from=superset-venv ${SUPERSET_VENV_ROOT} ${SUPERSET_VENV_ROOT}
ENV LAKEHOUSE_DASHBOARD_VENV_ROOT=${SUPERSET_VENV_ROOT}
RUN mkdir -p /var/lib/lakehouse/superset /var/lib/lakehouse/secrets \
    && chmod 0700 /var/lib/lakehouse/secrets \
    && /opt/lakehouse/docker/entrypoint.sh check dashboard
EXPOSE 8088
CMD ["dashboard"]

# Target `lakehouse` (the default): last, so that a plain `docker build .` builds the image without Superset.
FROM app AS lakehouse
