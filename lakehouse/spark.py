"""Spark settings in one place, and the SparkSession factory.

Every Spark application of the project (the spark-submit jobs, the Thrift server, the tests)
takes its settings from :func:`spark_properties` and :func:`hive_site_properties`. They are
rendered into a Spark conf directory under the state directory (``spark-defaults.conf``,
``hive-site.xml``, ``log4j2.properties``) and every launch points ``SPARK_CONF_DIR`` at it, so
``spark-submit``, ``pyspark`` and ``beeline`` read the same file. The metastore password lives
only in ``hive-site.xml``, which is readable by its owner alone, and never on a command line.

When ``thrift.auth`` resolves to ``password``, ``hive-site.xml`` also names the project's
authentication provider and its users file (``thrift-users``, owner-only, a PBKDF2 hash of the
password, never the password itself). They must be in ``hive-site.xml``: Spark's
CustomAuthenticationProviderImpl reads a fresh HiveConf, not the server's ``--hiveconf``
overrides. The TLS keystore's password, when TLS is on, is only in ``hive-site.xml`` as well.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.runtime.distribution import spark_home
from lakehouse.runtime.jars import spark_jars
from lakehouse.serving import auth

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
LOG4J_TEMPLATE = PROJECT_ROOT / "conf" / "log4j2.properties"
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# object_store.credentials: default. The AWS SDK v2's chain, in its order: JVM system properties,
# the AWS_* environment variables, a web identity token (EKS; the sts module), the shared profile
# file, the container's (ECS) and the instance's (EC2) role.
DEFAULT_CREDENTIALS_PROVIDER = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
LOOPBACK = "127.0.0.1"


def spark_properties(config: Config) -> dict[str, str]:
    """Settings shared by every Spark application of the project (spark-defaults.conf)."""
    jars = [str(p) for p in spark_jars(config)]
    classpath = os.pathsep.join(jars)
    props = {
        "spark.master": config.spark.master,
        "spark.driver.memory": config.spark.driver_memory,
        "spark.executor.memory": config.spark.executor_memory,
        # Delta: the extension and catalog, with the jars on the driver classpath so that
        # `USING DELTA` resolves in every application, the Thrift server included.
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.driver.extraClassPath": classpath,
        "spark.executor.extraClassPath": classpath,
        # Keep the metastore's copy of each Delta table's schema current, so JDBC clients
        # (getColumns: what BI tools call) see the columns, not an empty table.
        "spark.databricks.delta.catalog.update.enabled": "true",
        "spark.databricks.delta.snapshotPartitions": str(config.spark.delta_snapshot_partitions),
        # One shared catalog: the PostgreSQL-backed Hive metastore (hive-site.xml).
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": config.warehouse_dir,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        # Delta's VACUUM lists files with this many tasks (Spark's default is 10,000: over
        # half a minute of empty tasks per table on two cores, whatever the table's size).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(config.spark.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.ui.enabled": str(config.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.pyspark.python": config.spark.executor_python or sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    props |= s3a_properties(config)
    if config.spark.java_options:
        props["spark.driver.extraJavaOptions"] = config.spark.java_options
        props["spark.executor.extraJavaOptions"] = config.spark.java_options
    if config.spark.is_local:
        # Local mode: nothing needs to reach the driver from another host.
        props["spark.driver.bindAddress"] = LOOPBACK
        props["spark.driver.host"] = LOOPBACK
    else:
        # On a cluster the executors fetch the jars from the driver, and the UI is on: its REST
        # API is where a job reads what each executor ran (profiling.executor_summary).
        props["spark.jars"] = ",".join(jars)
        props["spark.ui.enabled"] = "true"
    return props


def s3a_properties(config: Config) -> dict[str, str]:
    """Hadoop's S3A client for an s3a:// warehouse (object_store), none on a file system.

    The secret key is not here (spark-defaults.conf is readable by all): it is in
    hive-site.xml, owner-only, like the metastore password (:func:`s3a_secret_properties`).
    Delta picks its S3SingleDriverLogStore for s3a:// paths by itself: a table's commits are
    atomic only among the writers of one driver, so every writer holds the writer lock
    (lakehouse/pipeline/lock.py; docs/deployment.md).
    """
    if not config.on_object_store:
        return {}
    store = config.object_store
    props = {
        "spark.hadoop.fs.s3a.endpoint": store.url,
        "spark.hadoop.fs.s3a.endpoint.region": store.region,
        "spark.hadoop.fs.s3a.path.style.access": str(store.path_style_access).lower(),
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(store.url.startswith("https://")).lower(),
    }
    if store.default_chain:
        # Each JVM (driver, executors on other hosts, the Thrift server) asks the chain itself.
        return props | {"spark.hadoop.fs.s3a.aws.credentials.provider": DEFAULT_CREDENTIALS_PROVIDER}
    return props | {
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3a.access.key": store.access_key,
    }


def s3a_secret_properties(config: Config) -> dict[str, str]:
    """The S3 secret key (hive-site.xml, owner-only; Hadoop reads it from there too)."""
    if not config.on_object_store or config.object_store.default_chain:
        return {}
    return {"fs.s3a.secret.key": config.object_store.secret_key}


def hive_site_properties(config: Config) -> dict[str, str]:
    """Metastore connection and Thrift authentication (hive-site.xml). Has passwords: owner-only."""
    pg = config.postgres
    props = {
        "javax.jdo.option.ConnectionURL": pg.jdbc_url(pg.metastore_database),
        "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "javax.jdo.option.ConnectionUserName": pg.user,
        "javax.jdo.option.ConnectionPassword": pg.password,
        # The schema is created once by `lakehouse up` (DataNucleus SchemaTool). Creating it
        # lazily from several JVMs at once deadlocks on PostgreSQL, so no JVM creates tables.
        "datanucleus.schema.autoCreateAll": "false",
        "hive.metastore.schema.verification": "false",
        "datanucleus.identifierFactory": "datanucleus1",
        "hive.server2.enable.doAs": "false",
    }
    return props | thrift_auth_properties(config) | s3a_secret_properties(config)


def thrift_auth_properties(config: Config) -> dict[str, str]:
    """Authentication and TLS of the Thrift server (in hive-site.xml, see the module's docstring)."""
    thrift = config.thrift
    props = {"hive.server2.authentication": "NONE"}
    if thrift.auth_enabled:
        props = {
            "hive.server2.authentication": "CUSTOM",
            "hive.server2.custom.authentication.class": auth.PROVIDER_CLASS,
            auth.USERS_FILE_PROPERTY: str(auth.users_file(config)),
        }
    if thrift.ssl and thrift.ssl_keystore:
        props |= {
            "hive.server2.use.SSL": "true",
            "hive.server2.keystore.path": thrift.ssl_keystore,
            "hive.server2.keystore.password": thrift.keystore_password,
        }
    return props


def thrift_server_properties(config: Config) -> dict[str, str]:
    """Settings only the Thrift server needs, passed as --hiveconf / --conf."""
    return {
        "hive.server2.thrift.bind.host": config.thrift.host,
        "hive.server2.thrift.port": str(config.thrift.port),
        "hive.server2.transport.mode": "binary",
    }


THRIFT_SPARK_CONF = {
    # Stream large results to the client batch by batch instead of collecting them.
    "spark.sql.thriftServer.incrementalCollect": "true",
    # SQL cannot read files by path (`text.`file:///...``): BI users see tables only. The
    # lockdown extension also refuses such reads when a session turns this back on.
    "spark.sql.runSQLOnFiles": "false",
    # Delta answers min/max/count from its log (OptimizeMetadataOnlyDeltaQuery) and casts a
    # date from the statistics to java.sql.Date, which fails with a ClassCastException
    # (java.time.LocalDate) under the Java 8 time API: `select max(date_col)`, the query every
    # BI tool sends to find a date range, failed over JDBC. Setting
    # spark.sql.datetime.java8API.enabled=false here does not help: the Thrift server turns it
    # on in every new session (SparkSQLSessionManager.openSession). So the metadata-only answer
    # is off on the server (a session that turns it back on gets the error back). Measured on 10M
    # rows on 2 cores: min/max of a date 1.7-2.1 s by scan vs 1.6 s from the log, count(*) 1.5 s.
    "spark.databricks.delta.optimizeMetadataQuery.enabled": "false",
}


def thrift_spark_conf(config: Config) -> dict[str, str]:
    """The --conf settings of the Thrift server (not of the jobs): THRIFT_SPARK_CONF, pools, lockdown."""
    from lakehouse.serving import lockdown, pools

    props = {**THRIFT_SPARK_CONF, **pools.server_conf(config)}
    if not config.spark.is_local:
        props["spark.ui.port"] = str(config.thrift.ui_port)
    if config.thrift.lockdown:
        props["spark.sql.extensions"] = f"{DELTA_EXTENSION},{lockdown.EXTENSION_CLASS}"
    return props


def _render_properties(props: dict[str, str]) -> str:
    lines = ["# Generated by lakehouse from conf/lakehouse.yaml; edit that, not this file."]
    lines += [f"{key} {value}" for key, value in sorted(props.items())]
    return "\n".join(lines) + "\n"


def _render_hive_site(props: dict[str, str]) -> str:
    body = "\n".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>" for k, v in sorted(props.items())
    )
    return f'<?xml version="1.0"?>\n<!-- Generated by lakehouse. -->\n<configuration>\n{body}\n</configuration>\n'


def _write_atomically(path: Path, text: str, mode: int) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(partial, mode)
    os.replace(partial, path)


def write_spark_conf(config: Config, *, thrift_server: bool = False) -> Path:
    """Render the Spark conf directory for this config; return its path.

    ``thrift_server``: also write the Thrift server's users file (when authentication is on).
    Only starting the server does, so a job run with another password cannot change the
    password a running server accepts.
    """
    conf_dir = config.spark_conf_dir
    conf_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(conf_dir / "spark-defaults.conf", _render_properties(spark_properties(config)), 0o644)
    _write_atomically(conf_dir / "hive-site.xml", _render_hive_site(hive_site_properties(config)), 0o600)
    if thrift_server and config.thrift.auth_enabled:
        auth.write_users_file(config)
    log4j = LOG4J_TEMPLATE.read_text().replace("@LEVEL@", config.spark.log_level.lower())
    _write_atomically(conf_dir / "log4j2.properties", log4j, 0o644)
    return conf_dir


def spark_env(config: Config) -> dict[str, str]:
    """Environment for any Spark launch: our conf directory and this interpreter for Python."""
    env = dict(os.environ)
    env["SPARK_CONF_DIR"] = str(config.spark_conf_dir)
    env["SPARK_HOME"] = str(spark_home())
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    if config.spark.is_local:
        env.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return env


def spark_submit_command(
    config: Config, target: str, args: list[str] | None = None, *, app_name: str, main_class: str | None = None
) -> list[str]:
    """The spark-submit line for a job file (or a JVM class with target 'spark-internal')."""
    command = [str(spark_home() / "bin" / "spark-submit"), "--name", app_name]
    if main_class:
        command += ["--class", main_class]
    return [*command, target, *(args or [])]


def build_session(config: Config, app_name: str) -> SparkSession:
    """The project's SparkSession: Delta, the shared metastore, the cached jars, config's master.

    Under spark-submit the JVM already runs with the rendered conf directory; from plain
    Python (tests, notebooks) this renders it and starts the JVM with the same settings.
    """
    missing = [p for p in spark_jars(config) if not p.exists()]
    if missing:
        raise RuntimeError(f"Spark jar {missing[0].name} is missing from {missing[0].parent}: run `make setup`")
    write_spark_conf(config)
    os.environ.update({k: v for k, v in spark_env(config).items() if k != "PYTHONPATH"})

    from pyspark.sql import SparkSession

    session = SparkSession.builder.appName(app_name).enableHiveSupport().getOrCreate()
    session.sparkContext.setLogLevel(config.spark.log_level)
    if not config.spark.is_local:
        ship_code(session, config)
    return session


def ship_code(session: SparkSession, config: Config) -> None:
    """Give the executors the project's code from the driver, as on another host (the MongoDB
    reader runs in their tasks), not from a copy on the worker.

    ``addPyFile`` also puts the archive on the driver's own ``sys.path``, ahead of the checkout;
    that entry is taken out again: the driver keeps importing the checkout, whose package sits
    next to conf/, dbt/ and jobs/ (``PROJECT_ROOT``). For the same reason not ``--py-files``.
    """
    from pyspark import SparkFiles

    from lakehouse.runtime.code_archive import code_archive

    archive = code_archive(config)
    session.sparkContext.addPyFile(str(archive))
    shipped = os.path.join(SparkFiles.getRootDirectory(), archive.name)
    while shipped in sys.path:
        sys.path.remove(shipped)


def ensure_database(spark: SparkSession, name: str) -> None:
    """Create a schema if missing (checking first keeps the metastore from logging an error)."""
    if not spark.catalog.databaseExists(name):
        spark.sql(f"create database if not exists {name}")
