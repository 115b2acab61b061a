"""Run and step records in ``ops.pipeline_runs`` (a Delta table, queryable over Thrift).

One row per step and source table (``source_table`` is null for steps that are not per table),
all rows of one pipeline run sharing a ``run_id``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse.config import Config
from lakehouse.spark import ensure_database

OPS_SCHEMA = "ops"
RUNS_TABLE = f"{OPS_SCHEMA}.pipeline_runs"
# The ops tables get a small commit from every run: Delta compacts their small files as they
# pile up (auto compaction, a post-commit hook of the writer), and the maintain step vacuums them.
AUTO_COMPACT = "delta.autoOptimize.autoCompact"
MAX_ERROR_CHARS = 1000

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("step", T.StringType(), False),
        T.StructField("source_system", T.StringType()),
        T.StructField("source_table", T.StringType()),
        T.StructField("batch_id", T.StringType()),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType()),
        T.StructField("rows_read", T.LongType()),
        T.StructField("rows_merged", T.LongType()),
        T.StructField("rows_quarantined", T.LongType()),
        T.StructField("rows_inserted", T.LongType()),
        T.StructField("rows_updated", T.LongType()),
        T.StructField("watermark_before", T.TimestampType()),
        T.StructField("watermark_after", T.TimestampType()),
        T.StructField("status", T.StringType(), False),
        T.StructField("error_message", T.StringType()),
        T.StructField("profile", T.StringType()),
    ]
)
PROFILE_COLUMN = "profile"
PROFILE_COMMENT = "where the time went, as JSON (lakehouse/profiling.py); `lakehouse profile RUN_ID` prints it"


def add_profile_column_sql(table: str = RUNS_TABLE) -> str:
    """A lakehouse built before the profile existed gets the column on its next write."""
    return f"alter table {table} add columns ({PROFILE_COLUMN} string comment '{PROFILE_COMMENT}')"


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class StepRecord:
    run_id: str
    step: str
    source_system: str | None = None
    source_table: str | None = None
    batch_id: str | None = None
    started_at: dt.datetime = field(default_factory=utc_now)
    ended_at: dt.datetime | None = None
    rows_read: int | None = None
    rows_merged: int | None = None
    rows_quarantined: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    watermark_before: dt.datetime | None = None
    watermark_after: dt.datetime | None = None
    status: str = "running"
    error_message: str | None = None
    profile: dict[str, Any] = field(default_factory=dict)

    def finish(self, status: str, error: str | None = None) -> StepRecord:
        self.ended_at = utc_now()
        self.status = status
        self.error_message = error[:MAX_ERROR_CHARS] if error else None
        return self


def ensure_ops_tables(spark: SparkSession) -> None:
    from delta.tables import DeltaTable

    ensure_database(spark, OPS_SCHEMA)
    DeltaTable.createIfNotExists(spark).tableName(RUNS_TABLE).addColumns(RUNS_SCHEMA).property(
        AUTO_COMPACT, "true"
    ).comment("One row per pipeline step and source table; rows of a run share run_id.").execute()
    if PROFILE_COLUMN not in spark.table(RUNS_TABLE).columns:
        spark.sql(add_profile_column_sql())


def record_steps(spark: SparkSession, records: list[StepRecord]) -> None:
    """Append finished step records in one Delta commit."""
    if not records:
        return
    ensure_ops_tables(spark)
    rows = [_row(r) for r in records]
    spark.createDataFrame(rows, RUNS_SCHEMA).write.format("delta").mode("append").saveAsTable(RUNS_TABLE)


def _row(record: StepRecord) -> tuple:
    """A record's values in the column order of RUNS_SCHEMA, the profile as JSON."""
    values = {**asdict(record), PROFILE_COLUMN: json.dumps(record.profile) if record.profile else None}
    return tuple(values[f.name] for f in RUNS_SCHEMA.fields)


def insert_sql(records: list[StepRecord], table: str = RUNS_TABLE) -> str:
    """One INSERT of finished step records, for writers that go through the Thrift server.

    Columns are named: a table older than the profile column fails on it by name (see
    :func:`add_profile_column_sql`) instead of taking the values in the wrong places.
    """
    from lakehouse.serving.sql_client import sql_literal

    columns = ", ".join(f.name for f in RUNS_SCHEMA.fields)
    values = ",\n".join("(" + ", ".join(sql_literal(v) for v in _row(r)) + ")" for r in records)
    return f"insert into {table} ({columns}) values\n{values}"


def record_over_thrift(config: Config, records: list[StepRecord], table: str = RUNS_TABLE) -> None:
    """Append finished step records in one commit through the Thrift server (the etl pool).

    A table built before the profile column existed gets it, and the insert is made again.
    """
    from lakehouse.serving.sql_client import QueryError, run_query

    try:
        run_query(config, insert_sql(records, table), etl=True)
    except QueryError:
        columns = {row[0] for row in run_query(config, f"describe {table}", etl=True).rows}
        if PROFILE_COLUMN in columns:
            raise
        run_query(config, add_profile_column_sql(table), etl=True)
        run_query(config, insert_sql(records, table), etl=True)
