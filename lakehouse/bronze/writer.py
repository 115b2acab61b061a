"""Writes to the bronze Delta tables: MERGE by key (a plain append into an empty table), full
refresh, and the quarantine table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.bronze.contracts import (
    BRONZE_SCHEMA,
    OPERATOR_BATCH_PREFIX,
    QUARANTINE_TABLE,
    RESCUED_DATA,
    UPDATED_AT,
    Contract,
)
from lakehouse.spark import ensure_database

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source_system", T.StringType(), False),
        T.StructField("source_table", T.StringType(), False),
        T.StructField("record_key", T.StringType()),
        T.StructField("payload", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("payload_sha256", T.StringType(), False),
        T.StructField("batch_id", T.StringType(), False),
        T.StructField("quarantined_at", T.TimestampType(), False),
    ]
)
TABLE_PROPERTIES = {
    # Deletion vectors make MERGE rewrite less: changed rows are marked, not whole files copied.
    "delta.enableDeletionVectors": "true",
}


@dataclass(frozen=True)
class MergeResult:
    """What Delta itself counted for one write: rows offered, inserted, updated."""

    source_rows: int
    inserted: int
    updated: int


def ensure_bronze_tables(spark: SparkSession, contracts: list[Contract]) -> None:
    from delta.tables import DeltaTable

    ensure_database(spark, BRONZE_SCHEMA)
    for contract in contracts:
        builder = DeltaTable.createIfNotExists(spark).tableName(contract.table).addColumns(contract.bronze_schema)
        for key, value in TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        builder.comment(
            f"Bronze copy of {contract.source_system} {contract.source_name}: one row per "
            f"{', '.join(contract.key)}, newest {UPDATED_AT} wins (on a tie, the later extract)."
        ).execute()
    builder = DeltaTable.createIfNotExists(spark).tableName(QUARANTINE_TABLE).addColumns(QUARANTINE_SCHEMA)
    builder.comment("Source rows that could not be typed or have no key, with the reason.").execute()


USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def _commit_metrics(spark: SparkSession, table: str, tag: str) -> dict[str, str] | None:
    """operationMetrics of the commit tagged `tag`, or None if the write committed nothing."""
    from delta.tables import DeltaTable

    row = (
        DeltaTable.forName(spark, table)
        .history(20)
        .filter(F.col("userMetadata") == tag)
        .orderBy(F.col("version").desc())
        .select("operationMetrics")
        .first()
    )
    return dict(row["operationMetrics"] or {}) if row else None


def _tagged_write(spark: SparkSession, table: str, tag: str, write: Callable[[], object]) -> dict[str, str]:
    """Run a Delta write with its commit tagged, and return that commit's metrics."""
    spark.conf.set(USER_METADATA_CONF, tag)
    try:
        write()
    finally:
        spark.conf.unset(USER_METADATA_CONF)
    return _commit_metrics(spark, table, tag) or {}


def replaces_stored_row(contract: Contract) -> str:
    """The MERGE's update condition: when the batch's row ``s`` replaces the stored row ``t``.

    A newer ``updated_at`` wins. On a tie, the row read by the later extract wins when it
    differs in any field: an extract reads the source's current state, so two edits stamped with
    the same ``updated_at`` (a coarse clock, an application that sets it) arrive in the order
    they were made, and the later one is kept. The same row read again changes nothing, so
    re-running a batch is a no-op. An older ``updated_at`` never replaces a newer one.
    """
    fields = [*contract.field_names, RESCUED_DATA]
    same = " and ".join(f"s.{name} <=> t.{name}" for name in fields if name != UPDATED_AT)
    return f"s.{UPDATED_AT} > t.{UPDATED_AT} or (s.{UPDATED_AT} = t.{UPDATED_AT} and not ({same}))"


def merge_batch(spark: SparkSession, contract: Contract, batch: DataFrame, batch_id: str) -> MergeResult:
    """MERGE one batch (at most one row per key) into the bronze table, by :func:`replaces_stored_row`.

    The counts are Delta's own, from this batch's commit.
    """
    from delta.tables import DeltaTable

    condition = " and ".join(f"t.{k} = s.{k}" for k in contract.key)
    merge = (
        DeltaTable.forName(spark, contract.table)
        .alias("t")
        .merge(batch.alias("s"), condition)
        .whenMatchedUpdateAll(condition=replaces_stored_row(contract))
        .whenNotMatchedInsertAll()
    )
    metrics = _tagged_write(spark, contract.table, batch_id, merge.execute)
    if not metrics:
        # Delta commits nothing when no row changed (a re-run). Then every row of the batch
        # must already be in the table with an updated_at at least as new.
        return MergeResult(batch.count() - _rows_not_in_table(spark, contract, batch), 0, 0)
    return MergeResult(
        int(metrics.get("numSourceRows", 0)),
        int(metrics.get("numTargetRowsInserted", 0)),
        int(metrics.get("numTargetRowsUpdated", 0)),
    )


def _rows_not_in_table(spark: SparkSession, contract: Contract, batch: DataFrame) -> int:
    stored = spark.table(contract.table).select(*contract.key, F.col(UPDATED_AT).alias("_stored_updated_at"))
    joined = batch.select(*contract.key, UPDATED_AT).join(stored, on=list(contract.key), how="left")
    return joined.filter(
        F.col("_stored_updated_at").isNull() | (F.col("_stored_updated_at") < F.col(UPDATED_AT))
    ).count()


def holds_no_files(spark: SparkSession, table: str) -> bool:
    """True when the Delta table's current snapshot has no data file (read from its log, no scan)."""
    return spark.sql(f"describe detail {table}").select("numFiles").first()[0] == 0


def append_batch(spark: SparkSession, contract: Contract, batch: DataFrame, batch_id: str) -> MergeResult:
    """The first load of an empty table: a plain append of the batch (at most one row per key),
    which is what the MERGE would do there, without its join. The counts are Delta's own."""
    metrics = _tagged_write(
        spark, contract.table, batch_id, lambda: batch.write.format("delta").mode("append").saveAsTable(contract.table)
    )
    written = int(metrics.get("numOutputRows", 0))
    return MergeResult(written, written, 0)


def overwrite_table(spark: SparkSession, contract: Contract, batch: DataFrame, batch_id: str) -> MergeResult:
    """Full refresh: replace the table's rows with this batch in one commit."""
    metrics = _tagged_write(
        spark,
        contract.table,
        batch_id,
        lambda: batch.write.format("delta").mode("overwrite").saveAsTable(contract.table),
    )
    written = int(metrics.get("numOutputRows", 0))
    return MergeResult(written, written, 0)


def quarantine_rows(spark: SparkSession, rows: DataFrame, contract: Contract, *, replace: bool = False) -> int:
    """Add quarantined rows; a payload already quarantined for this table is not added twice.

    Returns how many of `rows` are missing from the quarantine table afterwards (0 unless a
    write lost something). With ``replace`` (full refresh) the table's earlier quarantine rows
    that the new ones do not repeat are deleted by the same MERGE: one commit, so a crash
    leaves either the old quarantine of the table or the new one, never neither.
    """
    from delta.tables import DeltaTable

    match = ["source_system", "source_table", "payload_sha256"]
    merge = (
        DeltaTable.forName(spark, QUARANTINE_TABLE)
        .alias("t")
        .merge(rows.alias("s"), " and ".join(f"t.{c} = s.{c}" for c in match))
        .whenNotMatchedInsertAll()
    )
    if replace:
        # The operator's moves stay: the full refresh held their rows out of bronze too.
        merge = merge.whenNotMatchedBySourceDelete(
            f"t.source_system = '{contract.source_system}' and t.source_table = '{contract.source_name}' "
            f"and not startswith(t.batch_id, '{OPERATOR_BATCH_PREFIX}')"
        )
    merge.execute()
    stored = spark.table(QUARANTINE_TABLE).filter(
        (F.col("source_system") == contract.source_system) & (F.col("source_table") == contract.source_name)
    )
    return rows.join(stored.select(*match), on=match, how="left_anti").count()


def moved_by_operator(spark: SparkSession, contract: Contract) -> DataFrame:
    """The table's rows an operator moved from bronze to quarantine (``record_key``, ``payload``)."""
    return (
        spark.table(QUARANTINE_TABLE)
        .filter(
            (F.col("source_system") == contract.source_system)
            & (F.col("source_table") == contract.source_name)
            & F.col("batch_id").startswith(OPERATOR_BATCH_PREFIX)
        )
        .select("record_key", "payload")
    )


def tables_with_operator_moves(spark: SparkSession) -> set[tuple[str, str]]:
    """(source_system, source_table) of every table an operator moved rows of to quarantine."""
    moved = spark.table(QUARANTINE_TABLE).filter(F.col("batch_id").startswith(OPERATOR_BATCH_PREFIX))
    return {
        (r.source_system, r.source_table) for r in moved.select("source_system", "source_table").distinct().collect()
    }
