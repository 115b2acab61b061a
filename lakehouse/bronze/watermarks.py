"""High-water marks of ``updated_at`` per source table, in ``ops.watermarks``.

A watermark only moves after the bronze commit of its batch. A crash in between leaves the
old watermark, so the next run reads the same rows again, and the MERGE makes that harmless.

Each row also keeps the fingerprint of the window the next extract will read
(lakehouse/bronze/fingerprints.py), written in the same commit as the watermark, so the
pipeline can tell without Spark that the next extract would find nothing new.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.audit import AUTO_COMPACT, OPS_SCHEMA
from lakehouse.spark import ensure_database

WATERMARKS_TABLE = f"{OPS_SCHEMA}.watermarks"
SCHEMA = T.StructType(
    [
        T.StructField("source_system", T.StringType(), False),
        T.StructField("source_table", T.StringType(), False),
        T.StructField("watermark", T.TimestampType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("updated_at", T.TimestampType(), False),
        T.StructField("fingerprint", T.StringType(), True),
    ]
)
FINGERPRINT = "fingerprint"
FINGERPRINT_COMMENT = "JSON fingerprint of the window the next extract reads (null: extract it)"


def ensure_table(spark: SparkSession) -> None:
    from delta.tables import DeltaTable

    ensure_database(spark, OPS_SCHEMA)
    DeltaTable.createIfNotExists(spark).tableName(WATERMARKS_TABLE).addColumns(SCHEMA).property(
        AUTO_COMPACT, "true"
    ).comment("High-water mark of updated_at per source table, advanced after each bronze commit.").execute()
    if FINGERPRINT not in spark.table(WATERMARKS_TABLE).columns:  # a table from before fingerprints
        spark.sql(f"alter table {WATERMARKS_TABLE} add columns ({FINGERPRINT} string comment '{FINGERPRINT_COMMENT}')")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_micros(column: str | Column) -> Column:
    """A timestamp column as microseconds since the epoch: what crosses to Python instead of it.

    PySpark's ``collect()`` turns a timestamp into a naive datetime in the *Python process's*
    local zone, whatever ``spark.sql.session.timeZone`` says; read as UTC, that shifts every
    watermark by the machine's offset. An integer cannot be misread.
    """
    return F.unix_micros(F.col(column) if isinstance(column, str) else column)


def utc_from_micros(micros: int | None) -> dt.datetime | None:
    """The aware UTC datetime of an :func:`epoch_micros` value."""
    return None if micros is None else _EPOCH + dt.timedelta(microseconds=micros)


def capped(watermark: dt.datetime | None, extract_started: dt.datetime, lookback_minutes: int) -> dt.datetime | None:
    """The watermark to store: never later than the extract's start minus the lookback.

    Rows stamped in the future are quarantined, but a source clock a little ahead (within the
    tolerance) must not carry the watermark past rows still being committed; a watermark stored
    in the future by an earlier run is pulled back the same way.
    """
    if watermark is None:
        return None
    return min(watermark, extract_started - dt.timedelta(minutes=lookback_minutes))


@dataclass(frozen=True)
class StoredMark:
    watermark: dt.datetime
    fingerprint: str | None


def get_stored(spark: SparkSession) -> dict[tuple[str, str], StoredMark]:
    """Every stored watermark and fingerprint, by (source_system, source_table), in one query."""
    rows = (
        spark.table(WATERMARKS_TABLE)
        .select("source_system", "source_table", epoch_micros("watermark").alias("watermark_us"), FINGERPRINT)
        .collect()  # one row per source table
    )
    return {
        (r["source_system"], r["source_table"]): StoredMark(utc_from_micros(r["watermark_us"]), r[FINGERPRINT])
        for r in rows
    }


def get_watermarks(spark: SparkSession) -> dict[tuple[str, str], dt.datetime]:
    """Every stored watermark, by (source_system, source_table), read in one query."""
    return {key: mark.watermark for key, mark in get_stored(spark).items()}


@dataclass(frozen=True)
class Mark:
    """What one extract leaves for its table: the watermark (None: keep the stored one), the
    batch that set it, and the fingerprint of the next window (None: the next run extracts)."""

    source_system: str
    source_table: str
    watermark: dt.datetime | None
    batch_id: str | None
    fingerprint: str | None


def set_watermarks(spark: SparkSession, marks: list[Mark]) -> None:
    """Upsert the marks in one commit; a mark without a watermark only sets the fingerprint."""
    from delta.tables import DeltaTable

    if not marks:
        return
    now = dt.datetime.now(dt.UTC)
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in SCHEMA.fields])
    rows = [(m.source_system, m.source_table, m.watermark, m.batch_id, now, m.fingerprint) for m in marks]
    update = spark.createDataFrame(rows, nullable)
    (
        DeltaTable.forName(spark, WATERMARKS_TABLE)
        .alias("t")
        .merge(update.alias("s"), "t.source_system = s.source_system and t.source_table = s.source_table")
        .whenMatchedUpdate(
            set={
                "watermark": "coalesce(s.watermark, t.watermark)",
                "batch_id": "coalesce(s.batch_id, t.batch_id)",
                "updated_at": "s.updated_at",
                FINGERPRINT: f"s.{FINGERPRINT}",
            }
        )
        .whenNotMatchedInsertAll(condition="s.watermark is not null")
        .execute()
    )
