"""High-water marks of ``updated_at`` per source table, in ``ops.watermarks``.

A watermark only moves after the bronze commit of its batch. A crash in between leaves the
old watermark, so the next run reads the same rows again, and the MERGE makes that harmless.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.audit import OPS_SCHEMA
from lakehouse.spark import ensure_database

WATERMARKS_TABLE = f"{OPS_SCHEMA}.watermarks"
SCHEMA = T.StructType(
    [
        T.StructField("source_system", T.StringType(), False),
        T.StructField("source_table", T.StringType(), False),
        T.StructField("watermark", T.TimestampType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("updated_at", T.TimestampType(), False),
    ]
)


def ensure_table(spark: SparkSession) -> None:
    from delta.tables import DeltaTable

    ensure_database(spark, OPS_SCHEMA)
    DeltaTable.createIfNotExists(spark).tableName(WATERMARKS_TABLE).addColumns(SCHEMA).comment(
        "High-water mark of updated_at per source table, advanced after each bronze commit."
    ).execute()


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


def get_watermarks(spark: SparkSession) -> dict[tuple[str, str], dt.datetime]:
    """Every stored watermark, by (source_system, source_table), read in one query."""
    rows = (
        spark.table(WATERMARKS_TABLE)
        .select("source_system", "source_table", epoch_micros("watermark").alias("watermark_us"))
        .collect()  # one row per source table
    )
    return {(r["source_system"], r["source_table"]): utc_from_micros(r["watermark_us"]) for r in rows}


def set_watermarks(spark: SparkSession, marks: list[tuple[str, str, dt.datetime, str]]) -> None:
    """Upsert (source_system, source_table, watermark, batch_id) rows in one commit."""
    from delta.tables import DeltaTable

    if not marks:
        return
    now = dt.datetime.now(dt.UTC)
    update = spark.createDataFrame([(*mark, now) for mark in marks], SCHEMA)
    (
        DeltaTable.forName(spark, WATERMARKS_TABLE)
        .alias("t")
        .merge(update.alias("s"), "t.source_system = s.source_system and t.source_table = s.source_table")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
