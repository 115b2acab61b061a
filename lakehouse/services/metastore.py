"""The Hive metastore schema in PostgreSQL, created once before any Spark application runs.

Letting each JVM create metastore tables lazily (``datanucleus.schema.autoCreateAll``) breaks
as soon as two applications start together: one waits forever on a lock the other holds
while adding foreign keys. So ``lakehouse up`` creates the whole schema up front with
DataNucleus' SchemaTool from the ``package.jdo`` mapping in Spark's own hive-metastore jar,
with the same identifier rules Hive uses, and every application runs with autoCreate off.
"""

from __future__ import annotations

import subprocess
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from lakehouse.config import Config
from lakehouse.runtime.distribution import spark_home
from lakehouse.runtime.jars import spark_jars
from lakehouse.services import postgres
from lakehouse.services.process import ServiceError

SCHEMA_TOOL = "org.datanucleus.store.schema.SchemaTool"
MAPPING = "package.jdo"
SCHEMA_TIMEOUT_SECONDS = 300
# A table every Hive metastore schema has; its presence means the schema was created.
MARKER_TABLE = "DBS"
# Column comments (dbt's descriptions) up to this long; Hive's mapping allows 256.
COMMENT_COLUMNS = (("COLUMNS_V2", "COMMENT"),)
COMMENT_CHARS = 4000


def schema_exists(config: Config) -> bool:
    conn = postgres.connect(config, config.postgres.metastore_database, retry_seconds=10)
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_tables where schemaname = 'public' and tablename = %s", (MARKER_TABLE,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def _hive_metastore_jar() -> Path:
    matches = sorted((spark_home() / "jars").glob("hive-metastore-*.jar"))
    if not matches:
        raise ServiceError(f"metastore: no hive-metastore jar in {spark_home() / 'jars'}")
    return matches[0]


def widen_comment_columns(config: Config) -> list[str]:
    """Let column comments be as long as dbt's descriptions; return the columns widened.

    Hive's mapping gives a column comment 256 characters (``COLUMNS_V2.COMMENT``, as in Hive 2's
    schema; Hive 3 widened it). A longer one makes the metastore refuse the table or view: Spark
    retries for about 20 s, then keeps the schema only in Delta's log, and a view cannot be
    stored at all. Widened in place, once (idempotent).
    """
    widened = []
    conn = postgres.connect(config, config.postgres.metastore_database, retry_seconds=10)
    try:
        with conn, conn.cursor() as cur:
            for table, column in COMMENT_COLUMNS:
                cur.execute(
                    "select character_maximum_length from information_schema.columns "
                    "where table_schema = 'public' and table_name = %s and column_name = %s",
                    (table, column),
                )
                found = cur.fetchone()
                if found and found[0] is not None and found[0] < COMMENT_CHARS:
                    cur.execute(f'alter table "{table}" alter column "{column}" type varchar({COMMENT_CHARS})')
                    widened.append(f"{table}.{column}")
    finally:
        conn.close()
    return widened


def ensure_schema(config: Config) -> bool:
    """Create the metastore tables if they are missing; return True when it created them."""
    if schema_exists(config):
        widen_comment_columns(config)
        return False
    postgres_jar = next(p for p in spark_jars(config) if "postgresql" in p.name)
    pg = config.postgres
    with tempfile.TemporaryDirectory(prefix="metastore-") as work:
        workdir = Path(work)
        with zipfile.ZipFile(_hive_metastore_jar()) as jar:
            jar.extract(MAPPING, workdir)
        props = workdir / "datanucleus.properties"
        props.touch(mode=0o600)
        props.write_text(
            "\n".join(
                [
                    f"javax.jdo.option.ConnectionURL={pg.jdbc_url(pg.metastore_database)}",
                    "javax.jdo.option.ConnectionDriverName=org.postgresql.Driver",
                    f"javax.jdo.option.ConnectionUserName={pg.user}",
                    f"javax.jdo.option.ConnectionPassword={pg.password}",
                    "datanucleus.identifierFactory=datanucleus1",
                    "datanucleus.storeManagerType=rdbms",
                ]
            )
            + "\n"
        )
        classpath = f"{spark_home() / 'jars'}/*:{postgres_jar}"
        result = subprocess.run(
            [
                "java",
                "-cp",
                classpath,
                SCHEMA_TOOL,
                "-create",
                "-api",
                "JDO",
                "-props",
                str(props),
                str(workdir / MAPPING),
            ],
            capture_output=True,
            text=True,
            timeout=SCHEMA_TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode != 0 or not schema_exists(config):
        lines = [
            line for line in (result.stderr + result.stdout).splitlines() if "Exception" in line or "ERROR" in line
        ]
        raise ServiceError(f"metastore: creating the schema failed: {lines[0] if lines else 'no tables created'}")
    widen_comment_columns(config)
    return True


def _store_of(location: str) -> str:
    """Where a location lives, as far as moving a lakehouse goes: the bucket for s3a://, else its
    file system's scheme (file, hdfs, ...)."""
    parts = urlsplit(location)
    return f"s3a://{parts.netloc}" if parts.scheme == "s3a" else (parts.scheme or "file")


def check_warehouse(config: Config) -> None:
    """Refuse a metastore whose databases live elsewhere than spark.warehouse_dir says.

    A lakehouse built on local disk cannot be used with an s3a:// warehouse (or the other way
    round): its tables' files would stay where they are, and new ones would go to the other
    store. Moving it is a full re-extract into a fresh state directory (docs/deployment.md).
    """
    if not schema_exists(config):
        return
    wanted = _store_of(config.warehouse_dir)
    conn = postgres.connect(config, config.postgres.metastore_database, retry_seconds=10)
    try:
        with conn.cursor() as cur:
            cur.execute('select "NAME", "DB_LOCATION_URI" from "DBS" order by "NAME"')
            databases = cur.fetchall()
    finally:
        conn.close()
    for name, location in databases:
        if _store_of(location) != wanted:
            raise ServiceError(
                f"metastore: database {name} is at {location}, but spark.warehouse_dir is {config.warehouse_dir}: "
                "this lakehouse was built on another store; to move it, re-extract it into a fresh state "
                "directory (docs/deployment.md, 'Moving a lakehouse to object storage')"
            )
