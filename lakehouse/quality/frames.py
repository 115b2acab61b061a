"""Pure transformations that shape bronze rows into the DataFrames the suites validate.

No function here reads a table or looks at config: the gate reads the batch, the referenced
keys and the quarantined rows, and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from expectations.common import INGEST_AGE_HOURS, ORPHAN_PREFIX, QUARANTINED, RECORD_KEY, ForeignKey
from lakehouse.bronze.contracts import INGESTED_AT

MICROS_PER_HOUR = 3_600 * 1_000_000
FOUND = "_found"
# Expectation arguments that name a column of the validated DataFrame.
COLUMN_KWARGS = ("column", "column_A", "column_B")
COLUMN_LIST_KWARGS = ("column_list",)


def suite_columns(expectation_kwargs: Iterable[dict[str, Any]]) -> list[str]:
    """Columns the expectations read, in first-seen order (to project the batch before caching)."""
    seen: dict[str, None] = {}
    for kwargs in expectation_kwargs:
        for name in COLUMN_KWARGS:
            if kwargs.get(name):
                seen[kwargs[name]] = None
        for name in COLUMN_LIST_KWARGS:
            for column in kwargs.get(name) or []:
                seen[column] = None
    return list(seen)


def is_derived(column: str) -> bool:
    """True for the columns the gate adds (``_orphan_*``, ``_ingest_age_hours``...)."""
    return column.startswith(ORPHAN_PREFIX) or column in (INGEST_AGE_HOURS, QUARANTINED, RECORD_KEY)


def with_orphan_column(batch: DataFrame, fk: ForeignKey, known_keys: DataFrame) -> DataFrame:
    """Add ``_orphan_<fk>``: the foreign key's value when ``known_keys`` lacks it, else null.

    ``known_keys`` holds the referenced key values in a column named like ``fk.column``, each
    at most once (the set of keys of the referenced table), so the left join keeps every batch
    row exactly once. A null foreign key is not an orphan.
    """
    found = known_keys.select(F.col(fk.column), F.lit(True).alias(FOUND))
    return (
        batch.join(found, on=fk.column, how="left")
        .withColumn(fk.orphan_column, F.when(F.col(FOUND).isNull(), F.col(fk.column)))
        .drop(FOUND)
    )


def with_ingest_age(batch: DataFrame, now: F.Column | None = None) -> DataFrame:
    """Add ``_ingest_age_hours``: hours between ``_ingested_at`` and ``now`` (default: query time)."""
    now = F.current_timestamp() if now is None else now
    age = (F.unix_micros(now) - F.unix_micros(F.col(INGESTED_AT))) / F.lit(MICROS_PER_HOUR)
    return batch.withColumn(INGEST_AGE_HOURS, age.cast(T.DoubleType()))


def quarantine_frame(batch: DataFrame, quarantined: DataFrame) -> DataFrame:
    """One row per source row of the batch: landed in bronze (false) or quarantined (true).

    ``quarantined`` is the batch's rows of ``bronze.quarantine`` (column ``record_key``). The
    share of ``_quarantined`` rows is the batch's quarantine share; ``_record_key`` names the
    quarantined rows in examples.
    """
    landed = batch.select(F.lit(False).alias(QUARANTINED), F.lit(None).cast(T.StringType()).alias(RECORD_KEY))
    sent = quarantined.select(
        F.lit(True).alias(QUARANTINED), F.col("record_key").cast(T.StringType()).alias(RECORD_KEY)
    )
    return landed.unionByName(sent)
