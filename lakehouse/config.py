"""One typed configuration object for the whole project.

Values come from ``conf/lakehouse.yaml`` (defaults), then from ``LAKEHOUSE_*`` environment
variables, which win: ``LAKEHOUSE_<SECTION>_<KEY>`` for a key in a section
(``LAKEHOUSE_THRIFT_PORT=10001``) and ``LAKEHOUSE_<KEY>`` for a top-level key
(``LAKEHOUSE_HOME``). ``SPARK_MASTER`` also sets ``spark.master``.

Secrets never come from the YAML file. The PostgreSQL password is read from
``LAKEHOUSE_POSTGRES_PASSWORD``, from the URL in ``LAKEHOUSE_POSTGRES_URL``, or, for the local
embedded server, from a file generated once under the state directory. The Thrift server's
password (when ``thrift.auth`` resolves to ``password``) is read from
``LAKEHOUSE_THRIFT_PASSWORD`` or, likewise, from a file generated once under the state
directory; the TLS keystore's password only from ``LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD``.
Secrets are kept out of ``repr()`` and out of every message this module raises.

Load the object once at an entry point with :func:`load_config` and pass it down.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from lakehouse.errors import LakehouseError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "conf" / "lakehouse.yaml"
ENV_PREFIX = "LAKEHOUSE_"
PASSWORD_ENV = "LAKEHOUSE_POSTGRES_PASSWORD"
THRIFT_PASSWORD_ENV = "LAKEHOUSE_THRIFT_PASSWORD"
KEYSTORE_PASSWORD_ENV = "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD"
OBJECT_STORE_SECRET_ENV = "LAKEHOUSE_OBJECT_STORE_SECRET_KEY"
CONFIG_FILE_ENV = "LAKEHOUSE_CONFIG"
# Environment variables with the prefix that are not config keys.
NON_CONFIG_ENV = {
    PASSWORD_ENV,
    THRIFT_PASSWORD_ENV,
    KEYSTORE_PASSWORD_ENV,
    OBJECT_STORE_SECRET_ENV,
    CONFIG_FILE_ENV,
    "LAKEHOUSE_TEST_HOME",
    "LAKEHOUSE_TEST_PORT_OFFSET",
}
MEMORY_PATTERN = re.compile(r"^\d+[kmgt]?$", re.IGNORECASE)
MASTER_PATTERN = re.compile(r"^(local(\[(\*|\d+)(,\d+)?\])?|spark://.+|yarn|k8s://.+|mesos://.+)$")
LOG_LEVELS = ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
MAX_PORT = 65535
# SeaweedFS serves gRPC on each HTTP port + 10000 (object_store.port).
GRPC_PORT_SHIFT = 10000
THRIFT_AUTH_MODES = ("auto", "none", "password")
# How the S3A client authenticates: object_store.access_key and its secret key, or the AWS SDK's
# default credential chain in every JVM (an instance or pod role on AWS: no key to hand out).
OBJECT_STORE_CREDENTIALS = ("keys", "default")
USER_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


class ConfigError(LakehouseError, ValueError):
    """A configuration value is missing or invalid; the message names the key and its origin."""


@dataclass(frozen=True)
class SparkConfig:
    master: str = "local[*]"
    driver_memory: str = "2g"
    executor_memory: str = "2g"
    shuffle_partitions: int = 8
    delta_snapshot_partitions: int = 4
    ui_enabled: bool = False
    log_level: str = "WARN"
    java_options: str = "-XX:+UseParallelGC"  # conf/lakehouse.yaml says why
    warehouse_dir: str | None = None
    # The Python the executors run (spark.pyspark.python); None: this interpreter. On a cluster,
    # the workers' Python with the project's dependencies; the project's code is shipped to the
    # executors with each job (--py-files), as it would be to another host.
    executor_python: str | None = None
    packages: tuple[str, ...] = ()
    maven_repo: str = "https://repo1.maven.org/maven2"

    def validate(self) -> None:
        if not MASTER_PATTERN.match(self.master):
            raise ConfigError(
                f"spark.master: {self.master!r} is not a Spark master URL "
                "(local[*], local[N], spark://host:port, yarn, k8s://...)"
            )
        for name in ("driver_memory", "executor_memory"):
            value = getattr(self, name)
            if not MEMORY_PATTERN.match(value):
                raise ConfigError(f"spark.{name}: {value!r} is not a JVM memory size such as 2g")
        for name in ("shuffle_partitions", "delta_snapshot_partitions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"spark.{name}: must be at least 1")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"spark.log_level: {self.log_level!r} is not one of {LOG_LEVELS}")
        for coordinate in self.packages:
            if coordinate.count(":") != 2:
                raise ConfigError(f"spark.packages: {coordinate!r} is not a Maven coordinate group:artifact:version")

    @property
    def is_local(self) -> bool:
        return self.master.startswith("local")


# A bucket name as S3 accepts it (3-63 lower-case letters, digits, dots and hyphens).
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3A_SCHEME = "s3a://"


@dataclass(frozen=True)
class ObjectStoreConfig:
    """The S3-compatible object store of an ``s3a://`` warehouse (``spark.warehouse_dir``).

    Used only when the warehouse is on s3a: the bucket is the warehouse URL's host. With no
    ``endpoint``, ``lakehouse up`` runs the project's own SeaweedFS on ``host``:``port`` (its S3
    gateway; the master, volume and filer servers take the next three ports, and each of those
    its port + 10000 for gRPC) with the access key below and a secret key generated into
    ``<home>/secrets``. With an ``endpoint`` that server is used, and the secret key comes from
    LAKEHOUSE_OBJECT_STORE_SECRET_KEY; or, with ``credentials: default``, every Spark JVM finds
    its own credentials through the AWS SDK's default chain (environment variables, the shared
    profile file, a web identity token, the container's or the instance's role), and neither key
    is set anywhere.
    """

    endpoint: str | None = None
    host: str = "127.0.0.1"
    port: int = 18333
    path_style_access: bool = True
    region: str = "us-east-1"
    access_key: str = "lakehouse"
    # keys: access_key and LAKEHOUSE_OBJECT_STORE_SECRET_KEY; default: the AWS SDK's default
    # credential chain of each JVM (OBJECT_STORE_CREDENTIALS).
    credentials: str = "keys"
    # Resolved at load time; never printed.
    secret_key: str = field(default="", repr=False)

    def validate(self) -> None:
        _check_port("object_store.port", self.port)
        if self.credentials not in OBJECT_STORE_CREDENTIALS:
            raise ConfigError(
                f"object_store.credentials: {self.credentials!r} is not one of {', '.join(OBJECT_STORE_CREDENTIALS)}"
            )
        if self.default_chain and self.embedded:
            raise ConfigError(
                "object_store.credentials: default needs object_store.endpoint (the embedded SeaweedFS "
                "accepts only its own keys: use credentials: keys)"
            )
        if self.port + 3 + GRPC_PORT_SHIFT > MAX_PORT:
            raise ConfigError(
                f"object_store.port: {self.port} leaves no room for the embedded server's gRPC ports "
                f"(port + 1..3 + {GRPC_PORT_SHIFT} must be at most {MAX_PORT})"
            )
        if self.endpoint is not None and not re.match(r"^https?://[^/\s]+/?$", self.endpoint):
            raise ConfigError(
                f"object_store.endpoint: {self.endpoint!r} is not an http(s)://host:port URL of an S3 endpoint"
            )
        if not self.access_key.strip():
            raise ConfigError("object_store.access_key: a value is required")

    @property
    def embedded(self) -> bool:
        """True when the project runs its own SeaweedFS (no object_store.endpoint)."""
        return self.endpoint is None

    @property
    def default_chain(self) -> bool:
        """True when the JVMs find their credentials themselves (``credentials: default``)."""
        return self.credentials == "default"

    @property
    def url(self) -> str:
        """The S3 endpoint the Spark applications use."""
        return (self.endpoint or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class PostgresConfig:
    url: str | None = None
    host: str = "127.0.0.1"
    port: int = 15432
    user: str = "lakehouse"
    database: str = "streaming"
    metastore_database: str = "metastore"
    # Resolved at load time; never printed.
    password: str = field(default="", repr=False)

    def validate(self) -> None:
        _check_port("postgres.port", self.port)
        for name in ("user", "database", "metastore_database"):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", getattr(self, name)):
                raise ConfigError(f"postgres.{name}: {getattr(self, name)!r} is not a plain identifier")

    @property
    def embedded(self) -> bool:
        """True when the project runs its own local server (no LAKEHOUSE_POSTGRES_URL)."""
        return self.url is None

    def jdbc_url(self, database: str | None = None) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{database or self.database}"

    def dsn(self, database: str | None = None) -> dict[str, Any]:
        """Keyword arguments for psycopg2.connect."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database or self.database,
        }

    def display(self, database: str | None = None) -> str:
        """A connection string safe to print: no password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database or self.database}"


@dataclass(frozen=True)
class MongoConfig:
    uri: str | None = field(default=None, repr=False)  # may carry credentials
    host: str = "127.0.0.1"
    port: int = 27018
    database: str = "streaming"

    def validate(self) -> None:
        _check_port("mongodb.port", self.port)
        if self.uri is not None and not self.uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError("mongodb.uri: must start with mongodb:// or mongodb+srv://")

    @property
    def embedded(self) -> bool:
        return self.uri is None

    @property
    def connection_uri(self) -> str:
        return self.uri or f"mongodb://{self.host}:{self.port}/"

    def display(self) -> str:
        """The URI without credentials, safe to print."""
        parts = urlsplit(self.connection_uri)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/{self.database}"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ThriftConfig:
    host: str = "127.0.0.1"
    port: int = 10000
    # The server's Spark UI and REST API, on a cluster only (in local mode the UI is off unless
    # spark.ui_enabled): `lakehouse bench --cluster` reads each executor's tasks there.
    ui_port: int = 4050
    driver_memory: str = "2g"
    startup_timeout_seconds: int = 180
    # `lakehouse status` waits this long for the server to answer `select 1`.
    status_timeout_seconds: int = 15
    # Clients of this project (lakehouse sql, the pipeline's maintain and audit steps) wait at
    # most this long for any one answer of the server (a query, a login, a session close).
    query_timeout_seconds: int = 3600
    # The server cancels a query of a BI session (the bi pool: every session but dbt's and the
    # pipeline's) that runs longer than this; 0: no limit.
    bi_query_timeout_seconds: int = 900
    # auto: a user name and password are required unless the server listens on (and clients
    # connect to) a loopback address; none: never; password: always.
    auth: str = "auto"
    # The one user the server accepts when authentication is on (clients log in as this user).
    user: str = "lakehouse"
    # TLS on the Thrift port: the server needs ssl_keystore (JKS or PKCS12) and
    # LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD; clients verify the server's certificate against
    # ssl_ca (a PEM file) or, when unset, the system's CA certificates.
    ssl: bool = False
    ssl_keystore: str | None = None
    ssl_ca: str | None = None
    # Off loopback the server refuses to start with a password but without TLS, unless this
    # says the network is trusted (compose: the port is published on the host's loopback only).
    allow_plaintext_login: bool = False
    # The SQL lockdown for Thrift sessions (no ADD JAR, reflect, files by path, ...).
    lockdown: bool = True
    # Resolved at load time; never printed.
    password: str = field(default="", repr=False)
    keystore_password: str = field(default="", repr=False)

    def validate(self) -> None:
        _check_port("thrift.port", self.port)
        _check_port("thrift.ui_port", self.ui_port)
        if not MEMORY_PATTERN.match(self.driver_memory):
            raise ConfigError(f"thrift.driver_memory: {self.driver_memory!r} is not a JVM memory size")
        for name in ("startup_timeout_seconds", "status_timeout_seconds", "query_timeout_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"thrift.{name}: must be at least 1")
        if self.bi_query_timeout_seconds < 0:
            raise ConfigError("thrift.bi_query_timeout_seconds: must be 0 (no limit) or more")
        if self.auth not in THRIFT_AUTH_MODES:
            raise ConfigError(f"thrift.auth: {self.auth!r} is not one of {', '.join(THRIFT_AUTH_MODES)}")
        if not USER_NAME_PATTERN.fullmatch(self.user):
            raise ConfigError(f"thrift.user: {self.user!r} is not a plain user name")
        if self.ssl_keystore is not None and not self.ssl:
            raise ConfigError("thrift.ssl_keystore: set only together with thrift.ssl: true")

    @property
    def auth_enabled(self) -> bool:
        """Whether the server requires, and clients send, a user name and password."""
        if self.auth == "auto":
            return not is_loopback(self.host)
        return self.auth == "password"

    @property
    def auth_mode(self) -> str:
        """The resolved mode: password or none."""
        return "password" if self.auth_enabled else "none"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:hive2://{self.host}:{self.port}"


@dataclass(frozen=True)
class BronzeConfig:
    # Re-read this much before the stored watermark: catches rows whose transaction committed
    # late with an older updated_at. Re-reading is harmless: the MERGE is idempotent.
    lookback_minutes: int = 10
    # A row whose updated_at is more than this after the extract's start goes to quarantine
    # (a mis-set clock): the watermark never runs ahead of the clock.
    future_tolerance_minutes: int = 60
    jdbc_partitions: int = 4
    # A big batch gets more partitions: each task reads at most this many rows.
    jdbc_rows_per_partition: int = 500_000
    jdbc_fetchsize: int = 10000
    mongodb_partitions: int = 4
    mongodb_batch_size: int = 2000
    # A source that is down is retried this many times with exponential backoff.
    source_retries: int = 3
    retry_backoff_seconds: float = 2.0
    # Tables extracted at once in the one Spark application, and validated at once by the gate.
    # Overlapping one table's driver work (Delta log, planning, metastore) with another's tasks
    # keeps both cores busy.
    parallel_tables: int = 2

    def validate(self) -> None:
        if self.lookback_minutes < 0:
            raise ConfigError("bronze.lookback_minutes: must not be negative")
        if self.future_tolerance_minutes < 0:
            raise ConfigError("bronze.future_tolerance_minutes: must not be negative")
        for name in (
            "jdbc_partitions",
            "jdbc_rows_per_partition",
            "jdbc_fetchsize",
            "mongodb_partitions",
            "mongodb_batch_size",
            "parallel_tables",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"bronze.{name}: must be at least 1")
        if self.source_retries < 0 or self.retry_backoff_seconds < 0:
            raise ConfigError("bronze.source_retries and bronze.retry_backoff_seconds: must not be negative")


@dataclass(frozen=True)
class QualityConfig:
    # The quality gate's run-time thresholds; the per-check thresholds live in expectations/.
    # A newest batch ingested longer ago than this is stale: a warning.
    freshness_hours: float = 36.0
    # Rows expected in one bronze batch: fewer is a warning (nothing new arrived), more is
    # critical (a runaway source or a broken watermark).
    min_batch_rows: int = 1
    max_batch_rows: int = 100_000_000
    # Keys of failing rows shown and stored per failed expectation.
    example_keys: int = 5

    def validate(self) -> None:
        if self.freshness_hours <= 0:
            raise ConfigError("quality.freshness_hours: must be positive")
        if self.min_batch_rows < 0 or self.max_batch_rows < self.min_batch_rows:
            raise ConfigError("quality.min_batch_rows and quality.max_batch_rows: need 0 <= min <= max")
        if self.example_keys < 0:
            raise ConfigError("quality.example_keys: must not be negative")


@dataclass(frozen=True)
class DbtConfig:
    # Queries dbt runs at once on the Thrift server.
    threads: int = 4
    # The user dbt's Thrift sessions run as.
    user: str = "lakehouse"
    # Connection attempts while the Thrift server is still booting (retry_all in profiles.yml).
    connect_retries: int = 10
    # Seconds dbt-spark sleeps between status checks of each running query (its default, 5,
    # makes every query take at least 5 s; whole seconds only).
    poll_interval_seconds: int = 1
    # A dbt invocation (the transform step) running longer than this is stopped and fails:
    # a hung Thrift server must not hold the pipeline forever.
    timeout_seconds: int = 7200

    def validate(self) -> None:
        if self.threads < 1:
            raise ConfigError("dbt.threads: must be at least 1")
        if self.poll_interval_seconds < 1:
            raise ConfigError("dbt.poll_interval_seconds: must be at least 1 (dbt-spark takes whole seconds)")
        if self.connect_retries < 0:
            raise ConfigError("dbt.connect_retries: must not be negative")
        if self.timeout_seconds < 1:
            raise ConfigError("dbt.timeout_seconds: must be at least 1")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", self.user):
            raise ConfigError(f"dbt.user: {self.user!r} is not a plain user name")


@dataclass(frozen=True)
class PipelineConfig:
    # A step that fails for a transient reason (a server not answering yet) is retried this
    # many times, waiting retry_backoff_seconds, then twice that, and so on.
    step_retries: int = 2
    retry_backoff_seconds: float = 5.0
    # The maintain step (lakehouse/pipeline/maintain.py): VACUUM keeps this many hours of old
    # files (time travel and readers of older versions need them). Set as each table's
    # delta.deletedFileRetentionDuration, which Delta's VACUUM honours.
    vacuum_retain_hours: int = 168
    # ... and vacuums a table at most this often (a VACUUM lists every file of the table).
    vacuum_interval_hours: int = 24
    # ... and OPTIMIZEs a table once this many small files were written since its last OPTIMIZE.
    optimize_min_small_files: int = 16
    # Schemas the maintain step compacts and vacuums: bronze, and dbt's build schemas (the
    # published views pin versions of them; maintain never vacuums files a view reads).
    maintain_schemas: tuple[str, ...] = ("bronze", "silver_build", "gold_build")
    # The ops tables (run log, watermarks, verdicts, results) get a commit from most runs:
    # Delta compacts them as small files pile up, and they are vacuumed when none of their last
    # this-many commits was a VACUUM (a run every five minutes: about every eight hours).
    ops_vacuum_commits: int = 100
    # A spark-submit job (extract, validate) running longer than this is stopped and fails.
    job_timeout_seconds: int = 7200
    # `--wait` queues behind another writer for at most this long, then fails naming it.
    lock_wait_seconds: int = 3600
    # Deciding without Spark whether a step has work (queries to the Thrift server) takes at
    # most this long; past it the step runs (when in doubt, it runs).
    decision_timeout_seconds: int = 60
    # The pipeline's extract and validate in a Spark application that stays up between runs
    # (lakehouse/pipeline/ingest_server.py; a local Spark master only): later runs skip the JVM
    # start and warm-up. It exits after this many idle minutes.
    ingest_server: bool = False
    ingest_server_idle_minutes: int = 60

    def validate(self) -> None:
        if self.step_retries < 0 or self.retry_backoff_seconds < 0:
            raise ConfigError("pipeline.step_retries and pipeline.retry_backoff_seconds: must not be negative")
        for name in (
            "job_timeout_seconds",
            "lock_wait_seconds",
            "decision_timeout_seconds",
            "ops_vacuum_commits",
            "ingest_server_idle_minutes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"pipeline.{name}: must be at least 1")
        if self.vacuum_retain_hours < 1:
            raise ConfigError("pipeline.vacuum_retain_hours: must be at least 1")
        if self.vacuum_interval_hours < 0:
            raise ConfigError("pipeline.vacuum_interval_hours: must not be negative (0: whenever maintain runs)")
        if self.optimize_min_small_files < 1:
            raise ConfigError("pipeline.optimize_min_small_files: must be at least 1")
        for schema in self.maintain_schemas:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
                raise ConfigError(f"pipeline.maintain_schemas: {schema!r} is not a schema name")


class _HttpServer:
    """A web server this project starts (``host``, ``port``): where a client on this machine
    reaches it."""

    host: str
    port: int

    @property
    def connect_host(self) -> str:
        """Where a client on this machine reaches it: loopback when it listens on every interface
        (``0.0.0.0`` in the compose stack's container)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host

    @property
    def url(self) -> str:
        return f"http://{self.connect_host}:{self.port}"


@dataclass(frozen=True)
class DashboardConfig(_HttpServer):
    # Apache Superset (`lakehouse dashboard up`): where it listens and how long it may take to start.
    host: str = "127.0.0.1"
    port: int = 8088
    # The admin user it creates; the password is generated once into <home>/secrets.
    admin_user: str = "admin"
    startup_timeout_seconds: int = 300
    # gunicorn threads of its one worker process.
    threads: int = 8
    # Where Superset's virtualenvs are installed (one per lock digest); None: the user's cache,
    # $XDG_CACHE_HOME/lakehouse/superset (~/.cache/...), shared by every clone and state directory.
    venv_root: str | None = None

    def validate(self) -> None:
        _check_port("dashboard.port", self.port)
        if not USER_NAME_PATTERN.fullmatch(self.admin_user):
            raise ConfigError(f"dashboard.admin_user: {self.admin_user!r} is not a plain user name")
        for name in ("startup_timeout_seconds", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"dashboard.{name}: must be at least 1")


@dataclass(frozen=True)
class OrchestratorConfig(_HttpServer):
    # Dagster (the optional code location, lakehouse/orchestration; `lakehouse dagster dev`).
    # Its webserver listens here; its daemon runs the schedule and the sensor.
    host: str = "127.0.0.1"
    port: int = 3000
    startup_timeout_seconds: int = 120
    # The daily run of lakehouse_pipeline (shipped stopped: turn it on in the UI or with
    # `dagster schedule start`), in this IANA time zone.
    schedule_cron: str = "0 3 * * *"
    timezone: str = "UTC"
    # How often the sensor asks the sources whether anything changed (shipped stopped too).
    sensor_interval_seconds: int = 300
    # Run on every failed Dagster run of the lakehouse, with LAKEHOUSE_ALERT_* variables (job,
    # run id, step, message); its output goes to Dagster's log. None: the failure is only
    # appended to <home>/reports/alerts.jsonl.
    alert_command: str | None = None

    def validate(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        _check_port("orchestrator.port", self.port)
        for name in ("startup_timeout_seconds", "sensor_interval_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"orchestrator.{name}: must be at least 1")
        if len(self.schedule_cron.split()) != 5:
            raise ConfigError(f"orchestrator.schedule_cron: {self.schedule_cron!r} is not a five-field cron expression")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"orchestrator.timezone: {self.timezone!r} is not an IANA time zone") from None


@dataclass(frozen=True)
class Config:
    home: Path
    cache_dir: Path
    spark: SparkConfig
    postgres: PostgresConfig
    mongodb: MongoConfig
    thrift: ThriftConfig
    bronze: BronzeConfig = field(default_factory=BronzeConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    dbt: DbtConfig = field(default_factory=DbtConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    orchestrator: OrchestratorConfig = field(default_factory=OrchestratorConfig)
    object_store: ObjectStoreConfig = field(default_factory=ObjectStoreConfig)
    source_file: Path = DEFAULT_CONFIG_FILE
    # Downloads and builds shared by every clone and state directory of this user
    # ($XDG_CACHE_HOME/lakehouse, ~/.cache/lakehouse): Superset's virtualenvs, the S3A jars and
    # the SeaweedFS binary, which a clean clone should not fetch or build again.
    user_cache_dir: Path = field(default_factory=lambda: user_cache_dir(os.environ))

    # Locations under the state directory, in one place.
    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def spark_conf_dir(self) -> Path:
        return self.home / "spark-conf"

    @property
    def warehouse_dir(self) -> str:
        return self.spark.warehouse_dir or (self.home / "warehouse").resolve().as_uri()

    @property
    def on_object_store(self) -> bool:
        """True when the warehouse is an s3a:// bucket (object_store), False on a file system."""
        return self.warehouse_dir.startswith(S3A_SCHEME)

    @property
    def warehouse_bucket(self) -> str | None:
        """The bucket of an s3a:// warehouse."""
        return urlsplit(self.warehouse_dir).netloc if self.on_object_store else None

    @property
    def jar_dir(self) -> Path:
        return self.cache_dir / "jars"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Every password this config holds: what no message may show (see lakehouse.errors)."""
        values = (
            self.postgres.password,
            self.thrift.password,
            self.thrift.keystore_password,
            self.object_store.secret_key,
        )
        return tuple(v for v in values if v)

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"


SECTIONS: dict[str, type] = {
    "spark": SparkConfig,
    "postgres": PostgresConfig,
    "mongodb": MongoConfig,
    "thrift": ThriftConfig,
    "bronze": BronzeConfig,
    "quality": QualityConfig,
    "dbt": DbtConfig,
    "pipeline": PipelineConfig,
    "dashboard": DashboardConfig,
    "orchestrator": OrchestratorConfig,
    "object_store": ObjectStoreConfig,
}
TOP_LEVEL_KEYS = ("home", "cache_dir")
SECRET_FIELDS = {
    ("postgres", "password"),
    ("thrift", "password"),
    ("thrift", "keystore_password"),
    ("object_store", "secret_key"),
}


def user_cache_dir(env: typing.Mapping[str, str]) -> Path:
    """$XDG_CACHE_HOME/lakehouse, or ~/.cache/lakehouse (see Config.user_cache_dir)."""
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lakehouse"


def _check_port(key: str, port: int) -> None:
    if not 1 <= port <= MAX_PORT:
        raise ConfigError(f"{key}: {port} is not a TCP port (1-{MAX_PORT})")


def _coerce(key: str, origin: str, raw: Any, annotation: Any) -> Any:
    """Convert a YAML or environment value to the field's declared type, naming the key on error."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
    if raw is None or (optional and isinstance(raw, str) and raw.strip().lower() in ("", "null")):
        if optional:
            return None
        raise ConfigError(f"{key} ({origin}): a value is required")
    try:
        if annotation is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if annotation is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(str(raw).strip())
        if annotation is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw).strip())
        if typing.get_origin(annotation) is tuple:
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        if annotation in (str, Path):
            if isinstance(raw, dict | list):
                raise ValueError
            return str(raw)
    except ValueError:
        expected = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{key} ({origin}): {raw!r} is not a valid {expected}") from None
    return raw


def _resolve_path(value: str | Path, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _section_values(
    section: str, cls: type, yaml_values: dict[str, Any], env: dict[str, str], source: Path
) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    secret_names = {name for s, name in SECRET_FIELDS if s == section}
    names = {f.name for f in dataclasses.fields(cls)} - secret_names
    secret = sorted(set(yaml_values) & secret_names)
    if secret:
        env_name = f"{ENV_PREFIX}{section.upper()}_{secret[0].upper()}"
        raise ConfigError(f"{section}.{secret[0]} ({source.name}): secrets are not read from this file; set {env_name}")
    unknown = set(yaml_values) - names
    if unknown:
        raise ConfigError(f"{section}.{sorted(unknown)[0]} ({source.name}): unknown key")
    values: dict[str, Any] = {}
    for name in names:
        env_name = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
        if env_name in env:
            values[name] = _coerce(f"{section}.{name}", env_name, env[env_name], hints[name])
        elif name in yaml_values:
            values[name] = _coerce(f"{section}.{name}", source.name, yaml_values[name], hints[name])
    return values


def _check_unknown_env(env: dict[str, str]) -> None:
    known = {f"{ENV_PREFIX}{key.upper()}" for key in TOP_LEVEL_KEYS} | NON_CONFIG_ENV
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if (section, f.name) not in SECRET_FIELDS:
                known.add(f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}")
    for name in env:
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        if any(name.startswith(f"{ENV_PREFIX}{section.upper()}_") for section in SECTIONS):
            raise ConfigError(f"{name}: not a configuration key (see conf/lakehouse.yaml)")


def _apply_postgres_url(values: dict[str, Any]) -> str | None:
    """Split LAKEHOUSE_POSTGRES_URL into host, port, user, database; return its password."""
    url = values.get("url")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError("postgres.url: must look like postgresql://user:password@host:port/database")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("postgres.url: the port is not a number") from None
    values["host"] = parts.hostname
    values["port"] = port or 5432
    # Keep the URL without its password: the password lives only in the secret field.
    netloc = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
    values["url"] = f"{parts.scheme}://{netloc}:{port or 5432}{parts.path}"
    if parts.username:
        values["user"] = unquote(parts.username)
    if parts.path.strip("/"):
        values["database"] = parts.path.strip("/")
    return unquote(parts.password) if parts.password else None


def generated_secret(secrets_dir: Path, name: str) -> str:
    """A local password: generated once, kept in a file only the owner can read."""
    path = secrets_dir / name
    if path.exists():
        return path.read_text().strip()
    secrets_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return password


def _embedded_password(secrets_dir: Path) -> str:
    """The local PostgreSQL server's password."""
    return generated_secret(secrets_dir, "postgres.password")


def thrift_password_file(home: Path) -> Path:
    """Where the generated Thrift password is kept when LAKEHOUSE_THRIFT_PASSWORD is not set."""
    return home / "secrets" / "thrift.password"


def _thrift_secrets(thrift: ThriftConfig, env: dict[str, str], home: Path) -> ThriftConfig:
    """Resolve the Thrift password (only when authentication is on) and the keystore password."""
    password = ""
    if thrift.auth_enabled:
        password = env.get(THRIFT_PASSWORD_ENV) or generated_secret(home / "secrets", thrift_password_file(home).name)
    keystore_password = env.get(KEYSTORE_PASSWORD_ENV) or ""
    if thrift.ssl_keystore is not None and not keystore_password:
        raise ConfigError(f"thrift.ssl_keystore: {KEYSTORE_PASSWORD_ENV} is not set (the keystore's password)")
    return dataclasses.replace(thrift, password=password, keystore_password=keystore_password)


def _check_warehouse(warehouse_dir: str | None) -> None:
    """An object-store warehouse is s3a://<bucket>/<path> (Hadoop's S3A client; s3:// and s3n://
    are other clients Spark does not ship)."""
    if warehouse_dir is None:
        return
    scheme = urlsplit(warehouse_dir).scheme
    if scheme in ("s3", "s3n"):
        raise ConfigError(
            f"spark.warehouse_dir: {warehouse_dir!r}: use s3a:// (Hadoop's S3A client) for an S3-compatible bucket"
        )
    if scheme == "s3a":
        bucket = urlsplit(warehouse_dir).netloc
        if not BUCKET_PATTERN.fullmatch(bucket) or ".." in bucket:
            raise ConfigError(f"spark.warehouse_dir: {bucket!r} in {warehouse_dir!r} is not an S3 bucket name")


def _object_store_secret(store: ObjectStoreConfig, env: dict[str, str], home: Path) -> ObjectStoreConfig:
    """The S3 secret key: from the environment, or generated for the embedded SeaweedFS; none
    with the default credential chain."""
    if store.default_chain:
        return store
    secret = env.get(OBJECT_STORE_SECRET_ENV)
    if not secret:
        if not store.embedded:
            raise ConfigError(f"object_store.endpoint: {OBJECT_STORE_SECRET_ENV} is not set (its secret key)")
        secret = generated_secret(home / "secrets", "object-store.secret-key")
    return dataclasses.replace(store, secret_key=secret)


def load_config(path: Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the YAML defaults, apply environment overrides, validate, resolve secrets."""
    env = dict(os.environ if env is None else env)
    source = Path(path or env.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE)
    if not source.exists():
        raise ConfigError(f"config file {source} does not exist")
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {source}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {source}: the top level must be a mapping")
    unknown = set(raw) - set(SECTIONS) - set(TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]} ({source.name}): unknown key")
    _check_unknown_env(env)

    sections: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        yaml_values = raw.get(section) or {}
        if not isinstance(yaml_values, dict):
            raise ConfigError(f"{section} ({source.name}): must be a mapping of keys")
        sections[section] = _section_values(section, cls, yaml_values, env, source)
    if "SPARK_MASTER" in env and f"{ENV_PREFIX}SPARK_MASTER" not in env:
        sections["spark"]["master"] = env["SPARK_MASTER"]

    top: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        env_name = f"{ENV_PREFIX}{key.upper()}"
        origin = env_name if env_name in env else source.name
        top[key] = _coerce(key, origin, env.get(env_name, raw.get(key)), str | None)
    home = _resolve_path(top["home"] or ".lakehouse", PROJECT_ROOT)
    cache_dir = _resolve_path(top["cache_dir"], PROJECT_ROOT) if top["cache_dir"] else home / "cache"

    url_password = _apply_postgres_url(sections["postgres"])
    for key in ("ssl_keystore", "ssl_ca"):
        if sections["thrift"].get(key):
            sections["thrift"][key] = str(_resolve_path(sections["thrift"][key], PROJECT_ROOT))
    spark = SparkConfig(**sections["spark"])
    postgres = PostgresConfig(**sections["postgres"])
    mongodb = MongoConfig(**sections["mongodb"])
    thrift = ThriftConfig(**sections["thrift"])
    bronze = BronzeConfig(**sections["bronze"])
    quality = QualityConfig(**sections["quality"])
    dbt = DbtConfig(**sections["dbt"])
    pipeline = PipelineConfig(**sections["pipeline"])
    dashboard = DashboardConfig(**sections["dashboard"])
    orchestrator = OrchestratorConfig(**sections["orchestrator"])
    object_store = ObjectStoreConfig(**sections["object_store"])
    parts = (spark, postgres, mongodb, thrift, bronze, quality, dbt, pipeline, dashboard, orchestrator, object_store)
    for part in parts:
        part.validate()
    _check_warehouse(spark.warehouse_dir)

    password = env.get(PASSWORD_ENV) or url_password
    if password is None:
        if not postgres.embedded:
            raise ConfigError(f"postgres.url: no password in the URL and {PASSWORD_ENV} is not set")
        password = _embedded_password(home / "secrets")
    postgres = dataclasses.replace(postgres, password=password)
    thrift = _thrift_secrets(thrift, env, home)
    if spark.warehouse_dir and spark.warehouse_dir.startswith(S3A_SCHEME):
        object_store = _object_store_secret(object_store, env, home)

    return Config(
        home=home,
        cache_dir=cache_dir,
        spark=spark,
        postgres=postgres,
        mongodb=mongodb,
        thrift=thrift,
        bronze=bronze,
        quality=quality,
        dbt=dbt,
        pipeline=pipeline,
        dashboard=dashboard,
        orchestrator=orchestrator,
        object_store=object_store,
        source_file=source,
        user_cache_dir=user_cache_dir(env),
    )
