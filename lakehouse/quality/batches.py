"""What the gate validates per table, and reading what the suites need.

By default the gate validates what is *pending* in each table (see
:mod:`lakehouse.quality.verdicts`): the rows ingested after the high-water mark of the table's
last passed verdict, read at one Delta version, and the quarantine rows of the same period
that no later good version of their record has superseded. However many extracts brought
them, a failed batch stays pending until it is fixed; an empty extract cannot pass it.

A batch is the set of bronze rows whose ``_batch_id`` is the id one extract gave its write of
a table (a MERGE stamps the rows it inserts or updates). ``lakehouse validate --batch-id``
validates one batch only (a look at it, not a verdict). The batch reported with the pending
rows is the table's newest: that of its latest successful extract in ``ops.pipeline_runs``,
or, for bronze written by other means, the ``_batch_id`` with the latest ``_ingested_at``.

Every MERGE writes the rows it touches into new files, so Delta's file statistics on
``_ingested_at`` and ``_batch_id`` skip the files of older rows: what is read is the new data,
not the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.audit import RUNS_TABLE
from lakehouse.bronze import transform
from lakehouse.bronze.contracts import BATCH_ID, CONTRACTS, INGESTED_AT, QUARANTINE_TABLE
from lakehouse.bronze.watermarks import epoch_micros
from lakehouse.errors import LakehouseError
from lakehouse.quality.verdicts import OPERATOR_REASON_PREFIX, PASSED, VERDICTS_TABLE

EXTRACT_STEP = "extract"
SUCCEEDED = "succeeded"
FROM_ARGUMENT = "argument"
FROM_RUNS = "ops.pipeline_runs"
FROM_BRONZE = "bronze"


class GateError(LakehouseError):
    """The gate cannot run (no bronze table, unknown batch or table); one readable line."""


@dataclass(frozen=True)
class BatchRef:
    """What the gate validates of one bronze table.

    ``batch_id`` is the batch given, or the table's newest (reported and stored with the
    outcomes). With ``pending`` the gate reads the table at ``version``: the rows ingested after
    ``since_us`` (epoch microseconds; ``None``: every row), not only that batch.
    """

    table: str
    batch_id: str | None
    source: str
    pending: bool = False
    version: int | None = None
    since_us: int | None = None

    @property
    def bronze_table(self) -> str:
        return CONTRACTS[self.table].table

    def describe(self) -> str:
        if not self.pending:
            return f"batch {self.batch_id} (from {self.source})"
        since = "everything (no passed gate yet)" if self.since_us is None else "what came after the last passed gate"
        return f"version {self.version}: {since}; newest batch {self.batch_id} (from {self.source})"


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


def passed_high_waters(spark: SparkSession, tables: list[str]) -> dict[str, int]:
    """Per table, the high-water mark (epoch microseconds) of its passed verdicts, if any."""
    if not spark.catalog.tableExists(VERDICTS_TABLE):
        return {}
    rows = (
        spark.table(VERDICTS_TABLE)
        .filter((F.col("verdict") == PASSED) & F.col("source_table").isin(tables))
        .groupBy("source_table")
        .agg(epoch_micros(F.max("high_water")).alias("high_water_us"))
        .collect()  # one row per table
    )
    return {r["source_table"]: r["high_water_us"] for r in rows}


def current_version(spark: SparkSession, table: str) -> int:
    """The newest Delta version of a bronze table."""
    from delta.tables import DeltaTable

    return DeltaTable.forName(spark, CONTRACTS[table].table).history(1).select("version").first()["version"]


def newest_batches(spark: SparkSession, tables: list[str]) -> list[BatchRef]:
    """Each table's newest batch: its latest successful extract's, else the newest in bronze."""
    extracted = _latest_extract_batches(spark, tables)
    refs = []
    for table in tables:
        if table in extracted:
            refs.append(BatchRef(table, extracted[table], FROM_RUNS))
        else:
            refs.append(BatchRef(table, _newest_bronze_batch(spark, table), FROM_BRONZE))
    return refs


def resolve_batches(
    spark: SparkSession,
    tables: list[str],
    batch_ids: dict[str, str] | None,
    *,
    versions: Mapping[str, int | None] | None = None,
) -> list[BatchRef]:
    """What to validate of each table: the given batch, else what is pending (module docstring).

    ``versions``: each table's newest Delta version when the caller has read it already."""
    if batch_ids is not None:
        return [BatchRef(t, batch_ids[t], FROM_ARGUMENT) for t in tables]
    high_waters = passed_high_waters(spark, tables)
    known = versions or {}

    def version(table: str) -> int:
        stored = known.get(table)
        return stored if stored is not None else current_version(spark, table)

    return [
        replace(ref, pending=True, version=version(ref.table), since_us=high_waters.get(ref.table))
        for ref in newest_batches(spark, tables)
    ]


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


def _after(column: str, since_us: int | None) -> F.Column:
    return F.lit(True) if since_us is None else F.col(column) > F.timestamp_micros(F.lit(since_us))


def read_batch(spark: SparkSession, ref: BatchRef, columns: list[str]) -> DataFrame:
    """The rows under validation (the batch, or what is pending), only the given columns."""
    if not ref.pending:
        return spark.table(ref.bronze_table).filter(F.col(BATCH_ID) == F.lit(ref.batch_id)).select(*columns)
    at_version = spark.sql(f"select * from {ref.bronze_table} version as of {int(ref.version)}")
    return at_version.filter(_after(INGESTED_AT, ref.since_us)).select(*columns)


def read_keys(spark: SparkSession, table: str, columns: list[str] | tuple[str, ...]) -> DataFrame:
    """The key columns of the whole bronze table."""
    return spark.table(CONTRACTS[table].table).select(*columns)


def read_known_keys(spark: SparkSession, table: str, ref_column: str, alias: str) -> DataFrame:
    """The set of values of a referenced key (each once), under the referencing column's name."""
    return spark.table(CONTRACTS[table].table).select(F.col(ref_column).alias(alias)).distinct()


def read_quarantined(spark: SparkSession, ref: BatchRef) -> DataFrame:
    """The rows in bronze.quarantine that belong to what is validated.

    For a batch: its rows. For what is pending: the rows quarantined after the last passed
    verdict, except those an operator moved there and those whose record a later good version
    in bronze has superseded (the source was fixed and re-extracted).
    """
    contract = CONTRACTS[ref.table]
    if not ref.pending:
        return spark.table(QUARANTINE_TABLE).filter(
            (F.col("source_system") == contract.source_system)
            & (F.col("source_table") == contract.source_name)
            & (F.col("batch_id") == F.lit(ref.batch_id))
        )
    pending = _quarantined_since(spark, ref).filter(~F.col("reason").startswith(OPERATOR_REASON_PREFIX))
    stored = spark.sql(f"select * from {ref.bronze_table} version as of {int(ref.version)}").select(
        transform.stored_record_key(contract).alias("record_key"), F.col(INGESTED_AT).alias("_stored_at")
    )
    return without_superseded(pending, stored)


def without_superseded(quarantined: DataFrame, stored: DataFrame) -> DataFrame:
    """The quarantine rows whose record has no good version in bronze stored after them.

    ``stored`` holds bronze's ``record_key`` and ``_stored_at`` (its ``_ingested_at``). A record
    quarantined and then fixed at the source and re-extracted no longer counts; one that bronze
    held before it was quarantined (an older good version) still does.
    """
    superseded = quarantined.join(stored, on="record_key").filter(F.col("_stored_at") > F.col("quarantined_at"))
    fixed = superseded.select("record_key", "payload_sha256")
    return quarantined.join(fixed, on=["record_key", "payload_sha256"], how="left_anti")


def has_pending(spark: SparkSession, ref: BatchRef) -> bool:
    """Whether anything is pending in the table: a row ingested or quarantined since the verdict."""
    if not read_batch(spark, ref, [INGESTED_AT]).isEmpty():
        return True
    return spark.catalog.tableExists(QUARANTINE_TABLE) and not _quarantined_since(spark, ref).isEmpty()


def _quarantined_since(spark: SparkSession, ref: BatchRef) -> DataFrame:
    contract = CONTRACTS[ref.table]
    return spark.table(QUARANTINE_TABLE).filter(
        (F.col("source_system") == contract.source_system)
        & (F.col("source_table") == contract.source_name)
        & _after("quarantined_at", ref.since_us)
    )


def newest_quarantined_us(spark: SparkSession, ref: BatchRef) -> int | None:
    """The newest quarantine time of the table's rows since the verdict (epoch microseconds)."""
    if not spark.catalog.tableExists(QUARANTINE_TABLE):
        return None
    return _quarantined_since(spark, ref).agg(epoch_micros(F.max("quarantined_at"))).first()[0]
