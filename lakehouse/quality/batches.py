"""Which bronze batch to validate per table, and reading what the suites need.

A batch is the set of bronze rows whose ``_batch_id`` is the id one extract gave its write of
a table (a MERGE stamps the rows it inserts or updates). The newest batch of a table is the
one of its latest successful extract in ``ops.pipeline_runs``; a table without such a row
(bronze written by other means) falls back to bronze itself: the ``_batch_id`` with the latest
``_ingested_at``.

Reading a batch filters bronze on ``_batch_id``. Every MERGE writes the rows it touches into
new files, so Delta's file statistics skip the files of other batches: the batch is read, not
the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.audit import RUNS_TABLE
from lakehouse.bronze.contracts import BATCH_ID, CONTRACTS, INGESTED_AT, QUARANTINE_TABLE

EXTRACT_STEP = "extract"
SUCCEEDED = "succeeded"
FROM_ARGUMENT = "argument"
FROM_RUNS = "ops.pipeline_runs"
FROM_BRONZE = "bronze"


class GateError(RuntimeError):
    """The gate cannot run (no bronze table, unknown batch or table); one readable line."""


@dataclass(frozen=True)
class BatchRef:
    """The batch of one bronze table under validation, and where its id came from."""

    table: str
    batch_id: str | None
    source: str

    @property
    def bronze_table(self) -> str:
        return CONTRACTS[self.table].table


def check_tables(spark: SparkSession, tables: list[str]) -> None:
    """Every table must be a known bronze table that exists."""
    unknown = [t for t in tables if t not in CONTRACTS]
    if unknown:
        raise GateError(f"no bronze table {unknown[0]!r}: known tables are {', '.join(CONTRACTS)}")
    for table in tables:
        if not spark.catalog.tableExists(CONTRACTS[table].table):
            raise GateError(f"{CONTRACTS[table].table} does not exist: run `lakehouse extract` first")


def _latest_extract_batches(spark: SparkSession, tables: list[str]) -> dict[str, str]:
    """Batch id of each table's latest successful extract in ops.pipeline_runs."""
    if not spark.catalog.tableExists(RUNS_TABLE):
        return {}
    newest_first = Window.partitionBy("source_table").orderBy(F.col("started_at").desc(), F.col("ended_at").desc())
    rows = (
        spark.table(RUNS_TABLE)
        .filter(
            (F.col("step") == EXTRACT_STEP)
            & (F.col("status") == SUCCEEDED)
            & F.col("source_table").isin(tables)
            & F.col("batch_id").isNotNull()
        )
        .withColumn("_rank", F.row_number().over(newest_first))
        .filter(F.col("_rank") == 1)
        .select("source_table", "batch_id")
        .collect()  # one row per table
    )
    return {r["source_table"]: r["batch_id"] for r in rows}


def _newest_bronze_batch(spark: SparkSession, table: str) -> str | None:
    row = (
        spark.table(CONTRACTS[table].table)
        .groupBy(BATCH_ID)
        .agg(F.max(INGESTED_AT).alias("_newest"))
        .orderBy(F.col("_newest").desc(), F.col(BATCH_ID).desc())
        .first()
    )
    return row[BATCH_ID] if row else None


def resolve_batches(spark: SparkSession, tables: list[str], batch_ids: dict[str, str] | None) -> list[BatchRef]:
    """The batch to validate for each table: given, else the newest (see the module docstring)."""
    if batch_ids is not None:
        return [BatchRef(t, batch_ids[t], FROM_ARGUMENT) for t in tables]
    extracted = _latest_extract_batches(spark, tables)
    refs = []
    for table in tables:
        if table in extracted:
            refs.append(BatchRef(table, extracted[table], FROM_RUNS))
        else:
            refs.append(BatchRef(table, _newest_bronze_batch(spark, table), FROM_BRONZE))
    return refs


def tables_of_batch(spark: SparkSession, batch_id: str) -> list[str]:
    """The bronze tables a batch id belongs to (an extract gives each table its own id)."""
    tables: list[str] = []
    if spark.catalog.tableExists(RUNS_TABLE):
        rows = (
            spark.table(RUNS_TABLE)
            .filter((F.col("batch_id") == batch_id) & F.col("source_table").isNotNull())
            .select("source_table")
            .distinct()
            .collect()  # at most one row per table
        )
        tables = [r["source_table"] for r in rows if r["source_table"] in CONTRACTS]
    if not tables:
        tables = [
            name
            for name, contract in CONTRACTS.items()
            if spark.catalog.tableExists(contract.table)
            and spark.table(contract.table).filter(F.col(BATCH_ID) == batch_id).limit(1).count() > 0
        ]
    if not tables:
        raise GateError(f"batch {batch_id!r} is in no bronze table and in no extract of ops.pipeline_runs")
    return [t for t in CONTRACTS if t in tables]


def read_batch(spark: SparkSession, ref: BatchRef, columns: list[str]) -> DataFrame:
    """The batch's rows of the bronze table, only the given columns."""
    return spark.table(ref.bronze_table).filter(F.col(BATCH_ID) == F.lit(ref.batch_id)).select(*columns)


def read_keys(spark: SparkSession, table: str, columns: list[str] | tuple[str, ...]) -> DataFrame:
    """The key columns of the whole bronze table."""
    return spark.table(CONTRACTS[table].table).select(*columns)


def read_known_keys(spark: SparkSession, table: str, ref_column: str, alias: str) -> DataFrame:
    """The set of values of a referenced key (each once), under the referencing column's name."""
    return spark.table(CONTRACTS[table].table).select(F.col(ref_column).alias(alias)).distinct()


def read_quarantined(spark: SparkSession, ref: BatchRef) -> DataFrame:
    """The batch's rows in bronze.quarantine."""
    contract = CONTRACTS[ref.table]
    return spark.table(QUARANTINE_TABLE).filter(
        (F.col("source_system") == contract.source_system)
        & (F.col("source_table") == contract.source_name)
        & (F.col("batch_id") == F.lit(ref.batch_id))
    )
