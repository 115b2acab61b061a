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

from lakehouse.config import Config
from lakehouse.runtime.distribution import spark_home
from lakehouse.runtime.jars import jar_paths
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
    postgres_jar = next(p for p in jar_paths(config.jar_dir, config.spark.packages) if "postgresql" in p.name)
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
