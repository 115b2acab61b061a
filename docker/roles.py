"""The Python side of the image's roles; docker/entrypoint.sh runs these.

    python docker/roles.py thrift   create the databases and metastore schema if missing, render
                                    the Spark conf, then become the Thrift server (foreground)
    python docker/roles.py dashboard
                                    set up Superset (metadata, admin, the Thrift server as its
                                    database, dashboards/), then become its server (foreground)
    python docker/roles.py dashboard-health
                                    exit 0 when Superset answers /health, 1 otherwise
    python docker/roles.py orchestrator
                                    write Dagster's instance (dagster.yaml), then become `dagster
                                    dev` (webserver, daemon, code server; foreground)
    python docker/roles.py orchestrator-health
                                    exit 0 when Dagster's webserver answers /server_info, 1 otherwise
    python docker/roles.py conf     render the Spark conf directory and print where it is
    python docker/roles.py check [dashboard] [orchestrator]
                                    print the versions; fail when something the image must carry
                                    is missing (Java, spark-submit, lakehouse, a baked jar, the
                                    Thrift auth provider; with `dashboard`, Superset's virtualenv;
                                    with `orchestrator`, the dagster extra)

Everything comes from the environment (LAKEHOUSE_*), as for any lakehouse command. With
LAKEHOUSE_DRY_RUN=1 the thrift, dashboard and orchestrator roles print their command line and
touch nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata

from lakehouse.config import PASSWORD_ENV, Config, load_config
from lakehouse.errors import LakehouseError
from lakehouse.runtime.jars import jar_paths
from lakehouse.serving import lockdown
from lakehouse.serving.auth import provider_jar

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MIN_JAVA_MAJOR = 17
JAVA_VERSION = re.compile(r'version "(\d+)')
# `check` reads only where the jars are; it must not generate a local PostgreSQL password
# (at build time that file would end up in the image), and Superset's container has no
# PostgreSQL to talk to: these roles run with this stand-in.
POSTGRES_PASSWORD_STAND_IN = "not-used-by-this-role"
CHECK_PARTS = ("dashboard", "orchestrator")
# What `check orchestrator` asks for: the dagster extra's server side (pyproject.toml).
CHECKED_DAGSTER_PACKAGES = ("dagster", "dagster-webserver", "dagster-dbt")


class RoleError(RuntimeError):
    """The role cannot run; the message says what to fix."""


def dry_run() -> bool:
    return os.environ.get("LAKEHOUSE_DRY_RUN", "0") == "1"


def thrift(config: Config) -> int:
    from lakehouse.services import metastore, postgres
    from lakehouse.services.thrift import check_prerequisites, command
    from lakehouse.spark import spark_env, write_spark_conf

    line = command(config)
    if dry_run():
        print(shlex.join(line))
        return 0
    check_prerequisites(config)
    if config.thrift.host not in LOOPBACK_HOSTS and not config.thrift.auth_enabled:
        print(
            f"thrift: listening on {config.thrift.host}:{config.thrift.port} WITHOUT authentication "
            "(thrift.auth is none): keep the port on a trusted network only",
            file=sys.stderr,
        )
    postgres.ensure_databases(config)
    if metastore.ensure_schema(config):
        print("thrift: created the Hive metastore schema", file=sys.stderr)
    metastore.check_warehouse(config)
    write_spark_conf(config, thrift_server=True)
    auth = f"user {config.thrift.user} with a password" if config.thrift.auth_enabled else "no authentication"
    tls = ", TLS" if config.thrift.ssl else ""
    print(
        f"thrift: starting on {config.thrift.host}:{config.thrift.port} ({auth}{tls}), master {config.spark.master}",
        flush=True,
    )
    os.execve(line[0], line, spark_env(config))
    return 1  # not reached


def conf(config: Config) -> int:
    from lakehouse.spark import write_spark_conf

    print(write_spark_conf(config, thrift_server=True))
    return 0


def _java_major() -> int:
    if shutil.which("java") is None:
        raise RoleError("java is not on the PATH")
    result = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    match = JAVA_VERSION.search(result.stderr + result.stdout)
    if result.returncode != 0 or match is None:
        raise RoleError("`java -version` failed")
    return int(match.group(1))


def _config_without_postgres() -> Config:
    env = dict(os.environ)
    env.setdefault(PASSWORD_ENV, POSTGRES_PASSWORD_STAND_IN)
    return load_config(env=env)


def dashboard(config: Config) -> int:
    from lakehouse.dashboards import install, superset

    if dry_run():
        print(shlex.join(superset.command(config)))
        return 0
    if not install.installed(config):
        raise RoleError(
            f"Superset's virtualenv is not in {install.venv_dir(config)}: build the image's `dashboard` target "
            "(docker compose build superset)"
        )
    print(
        f"dashboard: Superset on {config.dashboard.host}:{config.dashboard.port}, database "
        f"{superset.sqlalchemy_uri(config)}; login {config.dashboard.admin_user}, password in "
        f"{superset.admin_password_file(config)}",
        flush=True,
    )
    superset.serve(config, lambda line: print(line, flush=True))
    return 1  # not reached


def dashboard_health(config: Config) -> int:
    from lakehouse.dashboards import superset

    return 0 if superset.healthy(config) else 1


def orchestrator(config: Config) -> int:
    from lakehouse.services import dagster

    if dry_run():
        print(shlex.join(dagster.command(config)))
        return 0
    print(
        f"orchestrator: Dagster on {config.orchestrator.host}:{config.orchestrator.port}, instance "
        f"{dagster.home_dir(config)}, code location {dagster.CODE_LOCATION}",
        flush=True,
    )
    dagster.serve(config)
    return 1  # not reached


def orchestrator_health(config: Config) -> int:
    from lakehouse.services import dagster

    return 0 if dagster.healthy(config) else 1


def _check_orchestrator() -> str:
    from lakehouse.services import dagster

    found = dagster.executable()  # ServiceError (one line) without the extra
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in CHECKED_DAGSTER_PACKAGES)
    return f"{versions} ({found})"


def _check_dashboard(config: Config) -> str:
    from lakehouse.dashboards import install

    gunicorn = install.venv_bin(config, "gunicorn")
    if not install.installed(config) or not gunicorn.is_file():
        raise RoleError(f"Superset's virtualenv is missing from {install.venv_dir(config)}: rebuild the image")
    return f"Superset's virtualenv {install.venv_dir(config)}"


def check(what: list[str]) -> int:
    unknown = [part for part in what if part not in CHECK_PARTS]
    if unknown:
        raise RoleError(f"{unknown[0]!r} is not something check knows: choose from {', '.join(CHECK_PARTS)}")
    config = _config_without_postgres()
    major = _java_major()
    if major < MIN_JAVA_MAJOR:
        raise RoleError(f"Java {major} found, Spark 4 needs Java {MIN_JAVA_MAJOR} or newer")
    for tool in ("spark-submit", "lakehouse"):
        if shutil.which(tool) is None:
            raise RoleError(f"{tool} is not on the PATH")
    jars = jar_paths(config.jar_dir, config.spark.packages)
    missing = [p.name for p in jars if not p.is_file()]
    if missing:
        raise RoleError(f"jar {missing[0]} is missing from {config.jar_dir}: rebuild the image")
    provider = provider_jar(config)
    if not provider.is_file():
        raise RoleError(
            f"the Thrift auth provider {provider.name} is missing from {provider.parent}: rebuild the image"
        )
    extension = lockdown.extension_jar(config)
    if not extension.is_file():
        raise RoleError(
            f"the Thrift lockdown extension {extension.name} is missing from {extension.parent}: rebuild the image"
        )
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("lakehouse", "pyspark", "delta-spark"))
    print(f"{versions}, java {major}, python {sys.version.split()[0]}")
    print(f"{len(jars)} Spark jars in {config.jar_dir}, Thrift auth provider {provider}, lockdown {extension}")
    if "dashboard" in what:
        print(_check_dashboard(config))
    if "orchestrator" in what:
        print(_check_orchestrator())
    return 0


def main(argv: list[str]) -> int:
    role, args = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if role == "check":
            return check(args)
        if role in ("thrift", "conf"):
            config = load_config()
            return thrift(config) if role == "thrift" else conf(config)
        if role == "dashboard":
            return dashboard(_config_without_postgres())
        if role == "dashboard-health":
            return dashboard_health(_config_without_postgres())
        if role == "orchestrator":
            return orchestrator(load_config())
        if role == "orchestrator-health":
            return orchestrator_health(_config_without_postgres())
    except (LakehouseError, RoleError) as exc:  # ConfigError, ServiceError, DashboardError, ...
        print(f"{role}: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"roles.py: unknown role {role!r}: choose from thrift, dashboard, dashboard-health, orchestrator, "
        "orchestrator-health, conf, check",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
