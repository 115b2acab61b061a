"""The Spark Thrift Server (HiveServer2 protocol): what dbt, BI tools and `lakehouse sql` use.

pip's pyspark ships the server's jar but not ``sbin/start-thriftserver.sh``, so the server is
started as ``spark-submit --class HiveThriftServer2 spark-internal`` with the project's Spark
conf directory (Delta, the shared metastore, the jars on the driver classpath).

With ``thrift.auth`` resolving to ``password`` the server asks the project's provider
(``lakehouse/serving/auth.py``, built by ``lakehouse setup``) for every login; its jar goes on
the driver classpath. With ``thrift.ssl`` it serves TLS from ``thrift.ssl_keystore``. Off
loopback it does not start with passwords in plain text unless ``thrift.allow_plaintext_login``
says the network is trusted. With ``thrift.lockdown`` (the default) the server loads the SQL
lockdown extension (``lakehouse/serving/lockdown.py``) and cannot read files by path.
``status`` asks the server a query, so a server that keeps its port but hangs shows as such.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lakehouse.config import Config, is_loopback
from lakehouse.services.process import (
    ServiceError,
    ServiceStatus,
    check_port_free,
    port_open,
    read_pid,
    start_service,
    stop_service,
)
from lakehouse.serving import auth, lockdown
from lakehouse.spark import (
    THRIFT_SERVER_CLASS,
    spark_env,
    spark_properties,
    spark_submit_command,
    thrift_server_properties,
    thrift_spark_conf,
    write_spark_conf,
)

NAME = "thrift"
APP_NAME = "lakehouse-thrift-server"


def pid_file(config: Config):
    return config.run_dir / "thrift.pid"


def log_file(config: Config):
    return config.log_dir / "thrift.log"


def command(config: Config) -> list[str]:
    args = []
    for key, value in thrift_spark_conf(config).items():
        args += ["--conf", f"{key}={value}"]
    args += ["--driver-memory", config.thrift.driver_memory]
    extra_jars = []
    if config.thrift.auth_enabled:
        extra_jars.append(str(auth.provider_jar(config)))
    if config.thrift.lockdown:
        extra_jars.append(str(lockdown.extension_jar(config)))
    if extra_jars:
        # --driver-class-path replaces spark.driver.extraClassPath: keep the project's jars.
        classpath = [spark_properties(config)["spark.driver.extraClassPath"], *extra_jars]
        args += ["--driver-class-path", os.pathsep.join(p for p in classpath if p)]
    hiveconf = []
    for key, value in thrift_server_properties(config).items():
        hiveconf += ["--hiveconf", f"{key}={value}"]
    base = spark_submit_command(config, "spark-internal", hiveconf, app_name=APP_NAME, main_class=THRIFT_SERVER_CLASS)
    # spark-submit options go before the primary resource.
    return base[:1] + args + base[1:]


def healthy(config: Config) -> bool:
    """The server answers a query (a listening port alone is not enough: sessions may fail)."""
    if not port_open(config.thrift.host, config.thrift.port):
        return False
    from lakehouse.serving.sql_client import QueryError, run_query

    try:
        run_query(config, "select 1")
    except QueryError:
        return False
    return True


def check_prerequisites(config: Config) -> None:
    """Fail with one line when the server would be unsafe or what it needs is missing."""
    thrift = config.thrift
    if thrift.auth_enabled and not thrift.ssl and not is_loopback(thrift.host) and not thrift.allow_plaintext_login:
        raise ServiceError(
            f"thrift: refusing to take passwords in plain text on {thrift.host}:{thrift.port}: turn TLS on "
            "(LAKEHOUSE_THRIFT_SSL=true and LAKEHOUSE_THRIFT_SSL_KEYSTORE, see docs/deployment.md), or set "
            "LAKEHOUSE_THRIFT_ALLOW_PLAINTEXT_LOGIN=true on a network you trust"
        )
    if thrift.ssl:
        if not thrift.ssl_keystore:
            raise ServiceError(
                "thrift: thrift.ssl is true but thrift.ssl_keystore is not set (LAKEHOUSE_THRIFT_SSL_KEYSTORE)"
            )
        if not Path(thrift.ssl_keystore).is_file():
            raise ServiceError(f"thrift: thrift.ssl_keystore {thrift.ssl_keystore} does not exist")
    if thrift.auth_enabled and not auth.provider_jar(config).exists():
        raise ServiceError(
            f"thrift: thrift.auth is password but the provider is not built at {auth.provider_jar(config)}: "
            "run `make setup` (needs a JDK: javac)"
        )
    if thrift.lockdown and not lockdown.extension_jar(config).exists():
        raise ServiceError(
            f"thrift: thrift.lockdown is on but the extension is not built at {lockdown.extension_jar(config)}: "
            "run `make setup` (needs a JDK: javac)"
        )


def running(config: Config) -> bool:
    """This state directory's server process is alive (it may still be starting)."""
    return read_pid(pid_file(config)) is not None


def start(config: Config) -> bool:
    if running(config):
        return False
    check_prerequisites(config)
    check_port_free(config.thrift.host, config.thrift.port, "LAKEHOUSE_THRIFT_PORT")
    write_spark_conf(config, thrift_server=True)
    start_service(
        command(config),
        log_file=log_file(config),
        pid_file=pid_file(config),
        env=spark_env(config),
        ready=lambda: healthy(config),
        timeout=config.thrift.startup_timeout_seconds,
        what="thrift server",
    )
    return True


def stop(config: Config) -> bool:
    return stop_service(pid_file(config))


def answers(config: Config, timeout: float) -> bool:
    """The server answers `select 1` within ``timeout`` seconds (a hung server keeps its port open).

    The query runs in a daemon thread: a server that accepts the connection but never replies
    must not hold the caller.
    """
    done = threading.Event()
    outcome: list[bool] = []

    def probe() -> None:
        outcome.append(healthy(config))
        done.set()

    threading.Thread(target=probe, name="thrift-status", daemon=True).start()
    return done.wait(timeout) and outcome == [True]


def status(config: Config) -> ServiceStatus:
    """running (it answers a query), not answering (pid and port, but no answer), starting, stopped."""
    pid = read_pid(pid_file(config))
    state = "running" if pid else "stopped"
    if pid and not port_open(config.thrift.host, config.thrift.port):
        state = "starting"
    elif pid and not answers(config, config.thrift.status_timeout_seconds):
        state = "not answering"
    return ServiceStatus(NAME, state, f"{config.thrift.jdbc_url}/gold", pid=pid, log=log_file(config))
