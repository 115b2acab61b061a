"""Writes to the bronze Delta tables: MERGE by key, full refresh, and the quarantine table."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakehouse.bronze.contracts import BRONZE_SCHEMA, QUARANTINE_TABLE, UPDATED_AT, Contract

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

    spark.sql(f"create database if not exists {BRONZE_SCHEMA}")
    for contract in contracts:
        builder = DeltaTable.createIfNotExists(spark).tableName(contract.table).addColumns(contract.bronze_schema)
        for key, value in TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        builder.comment(
            f"Bronze copy of {contract.source_system} {contract.source_name}: one row per "
            f"{', '.join(contract.key)}, newest {UPDATED_AT} wins."
        ).execute()
    builder = DeltaTable.createIfNotExists(spark).tableName(QUARANTINE_TABLE).addColumns(QUARANTINE_SCHEMA)
    builder.comment("Source rows that could not be typed or have no key, with the reason.").execute()


def _last_operation_metrics(spark: SparkSession, table: str) -> dict[str, str]:
    from delta.tables import DeltaTable

    row = DeltaTable.forName(spark, table).history(1).select("operationMetrics").first()
    return dict(row["operationMetrics"] or {}) if row else {}


def merge_batch(spark: SparkSession, contract: Contract, batch: DataFrame) -> MergeResult:
    """MERGE one batch (at most one row per key) into the bronze table.

    A newer ``updated_at`` replaces the stored row; an equal or older one changes nothing, so
    re-running a batch is a no-op.
    """
    from delta.tables import DeltaTable

    condition = " and ".join(f"t.{k} = s.{k}" for k in contract.key)
    (
        DeltaTable.forName(spark, contract.table)
        .alias("t")
        .merge(batch.alias("s"), condition)
        .whenMatchedUpdateAll(condition=f"s.{UPDATED_AT} > t.{UPDATED_AT}")
        .whenNotMatchedInsertAll()
        .execute()
    )
    return _merge_result(_last_operation_metrics(spark, QUARANTINE_TABLE)).source_rows
    return _merge_result(_last_operation_metrics(spark, contract.table))


def _merge_result(metrics: dict[str, str]) -> MergeResult:
    return MergeResult(
        int(metrics.get("numSourceRows", 0)),
        int(metrics.get("numTargetRowsInserted", 0)),
        int(metrics.get("numTargetRowsUpdated", 0)),
    )


def overwrite_table(spark: SparkSession, contract: Contract, batch: DataFrame) -> MergeResult:
    """Full refresh: replace the table's rows with this batch in one commit."""
    batch.write.format("delta").mode("overwrite").saveAsTable(contract.table)
    written = int(_last_operation_metrics(spark, contract.table).get("numOutputRows", 0))
    return MergeResult(written, written, 0)


def quarantine_rows(spark: SparkSession, rows: DataFrame, contract: Contract, *, replace: bool = False) -> int:
    """Add quarantined rows; a payload already quarantined for this table is not added twice.

    With ``replace`` (full refresh) the table's earlier quarantine rows are deleted first. That
    is a separate commit: a crash between the two is repaired by running the refresh again.
    """
    from delta.tables import DeltaTable

    target = DeltaTable.forName(spark, QUARANTINE_TABLE)
    if replace:
        target.delete(f"source_system = '{contract.source_system}' and source_table = '{contract.source_name}'")
    (
        target.alias("t")
        .merge(
            rows.alias("s"),
            "t.source_table = s.source_table and t.source_system = s.source_system "
            "and t.payload_sha256 = s.payload_sha256",
        )
        .whenNotMatchedInsertAll()
        .execute()
    )
    return _merge_result(_last_operation_metrics(spark, QUARANTINE_TABLE)).source_rows
