"""The extract step: source batch -> typed, deduplicated rows MERGEd into bronze + quarantine.

For each table of a source, in one Spark application:

1. read the batch: rows with ``updated_at`` after the stored watermark minus the lookback
   (everything on the first run or with ``--full-refresh``), pushed down to the source;
2. type it by the contract; rows that cannot be typed or have no key go to quarantine; a
   version of a record an operator moved to quarantine (``lakehouse quarantine``) stays there;
3. keep the newest row per key and MERGE it into ``bronze.<table>`` (newest ``updated_at``
   wins, so re-running a batch changes nothing);
4. check that every row read was written somewhere: rows read = rows merged + rows
   quarantined, using the counts Delta reports for its own writes; fail loudly otherwise;
5. only then advance the watermark, with the fingerprint of the window the next extract will
   read (lakehouse/bronze/fingerprints.py: what lets the pipeline skip an extract that would
   find nothing new), and record the step in ``ops.pipeline_runs``.

Each commit is idempotent on a re-run, so a crash anywhere loses and duplicates nothing: the
crash tests (tests/integration/test_bronze.py) kill the process group at the points named in
:data:`CRASH_POINTS`, chosen with the environment variable ``LAKEHOUSE_CRASH_AT``
(``point`` or ``point:table``); unset, as always outside those tests, it does nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakehouse import errors, profiling
from lakehouse.audit import StepRecord, ensure_ops_tables, new_run_id, record_steps
from lakehouse.bronze import fingerprints, readers, transform, watermarks, writer
from lakehouse.bronze.contracts import MONGODB, POSTGRES, UPDATED_AT, Contract, contracts_for
from lakehouse.config import Config, load_config
from lakehouse.errors import LakehouseError

log = logging.getLogger(__name__)
STEP = "extract"
SOURCES = (POSTGRES, MONGODB)


# bronze.quarantine is shared by every table: its MERGEs would conflict if run at once.
_QUARANTINE_LOCK = threading.Lock()


CRASH_ENV = "LAKEHOUSE_CRASH_AT"
CRASH_POINTS = ("before-bronze-commit", "before-quarantine-commit", "before-watermarks", "before-audit")


def crash_point(point: str, table: str | None = None) -> None:
    """SIGKILL this process group when ``LAKEHOUSE_CRASH_AT`` names this point (crash tests)."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted in (point, f"{point}:{table}"):
        log.warning("%s=%s: killing the process group", CRASH_ENV, wanted)
        os.killpg(os.getpgrp(), signal.SIGKILL)


class ReconciliationError(LakehouseError):
    """Rows read from a source do not equal rows merged plus rows quarantined."""


def _read_batch(
    spark: SparkSession, config: Config, contract: Contract, since: dt.datetime | None, documents: list[str] | None
) -> DataFrame:
    """The batch of the window from `since`; `documents`: its documents, if the fingerprint kept them."""
    if contract.source_system == POSTGRES:
        return transform.with_postgres_fields(readers.read_postgres(spark, config, contract, since), contract)
    frame = readers.read_mongodb(spark, config, contract, since, documents=documents)
    return transform.with_document_fields(frame, contract)


def _batch_stats(checked: DataFrame, contract: Contract, latest: Column) -> Row:
    """Rows, valid rows, rows held back by an operator, keys of the valid rows to write and the
    newest valid ``updated_at`` of a typed batch, in one job."""
    valid_flag = F.size(transform.ERRORS) == 0
    to_write = valid_flag & ~F.col(transform.HELD)
    return checked.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(F.when(to_write, F.lit(1))).alias("valid"),
        F.count(F.when(valid_flag & F.col(transform.HELD), F.lit(1))).alias("held"),
        F.count_distinct(*[F.when(to_write, F.col(k)) for k in contract.key]).alias("valid_keys"),
        # Rows stamped in the future are quarantined and do not move the watermark.
        watermarks.epoch_micros(F.max(F.when(F.col(UPDATED_AT) <= latest, F.col(UPDATED_AT)))).alias(
            "max_updated_at_us"
        ),
    ).first()


def extract_table(
    spark: SparkSession,
    config: Config,
    contract: Contract,
    record: StepRecord,
    *,
    full_refresh: bool,
    stored: dt.datetime | None,
    held: bool = True,
) -> str | None:
    """Extract one table's batch into bronze, filling `record` as it goes (counts, watermarks).

    `stored` is the table's watermark; `held` says whether an operator moved rows of the table to
    quarantine (only then are the rows read compared with those moves). `spark` should be a
    session of its own when tables run in parallel: the commit tag is a session setting. Returns
    the fingerprint of the window the next extract will read, as JSON, or None when the source
    changed while this one read.
    """
    batch_id = record.batch_id or uuid.uuid4().hex
    record.watermark_before = stored
    lookback = config.bronze.lookback_minutes
    since = None if full_refresh else fingerprints.next_window(stored, lookback)
    ingested_at = F.lit(record.started_at).cast("timestamp")
    phases = profiling.Phases()
    with phases.timed("fingerprint"):
        before, documents = fingerprints.take_with_documents(config, contract, since)

    tolerance = config.bronze.future_tolerance_minutes
    latest = F.lit(record.started_at + dt.timedelta(minutes=tolerance)).cast("timestamp")
    checked = transform.with_errors(
        _read_batch(spark, config, contract, since, documents), contract, latest=latest, tolerance_minutes=tolerance
    )
    if held:
        checked = transform.with_held(checked, writer.moved_by_operator(spark, contract), contract)
    else:
        checked = checked.withColumn(transform.HELD, F.lit(False))
    checked = transform.for_the_writes(checked, contract).persist(StorageLevel.MEMORY_AND_DISK)
    commits = 0
    try:
        with phases.timed("read and type"):
            stats = _batch_stats(checked, contract, latest)
        record.rows_read = stats["rows"]
        record.rows_merged = stats["valid"]
        # Rows an operator moved to quarantine stay there when read again: quarantined rows too.
        bad = stats["rows"] - stats["valid"] - stats["held"]
        record.rows_quarantined = bad + stats["held"]
        if stats["held"]:
            record.profile["rows_held_by_operator"] = stats["held"]

        to_write = transform.filter_valid(checked).filter(~F.col(transform.HELD))
        latest = transform.filter_latest_per_key(to_write, contract)
        bronze_rows = transform.with_ingest_metadata(latest, contract, batch_id, ingested_at)
        crash_point("before-bronze-commit", contract.source_name)
        with phases.timed("bronze commit"):
            if full_refresh:
                result = writer.overwrite_table(spark, contract, bronze_rows, batch_id)
            elif record.rows_merged > 0 and stored is None and writer.holds_no_files(spark, contract.table):
                # The first load (no watermark yet, and no file: not a re-run after a crash).
                result = writer.append_batch(spark, contract, bronze_rows, batch_id)
            elif record.rows_merged > 0:
                result = writer.merge_batch(spark, contract, bronze_rows, batch_id)
            else:
                result = writer.MergeResult(0, 0, 0)
        commits += full_refresh or record.rows_merged > 0
        record.rows_inserted, record.rows_updated = result.inserted, result.updated
        missing_quarantine = 0
        if bad > 0 or full_refresh:
            rows = transform.to_quarantine(checked, contract, batch_id, ingested_at)
            crash_point("before-quarantine-commit", contract.source_name)
            with _QUARANTINE_LOCK, phases.timed("quarantine commit"):
                missing_quarantine = writer.quarantine_rows(spark, rows, contract, replace=full_refresh)
            commits += 1
    finally:
        checked.unpersist()
        record.profile.update({"delta_commits": commits, "phases": phases.seconds})

    # Every row read must be accounted for by what Delta reports it was given (one row per
    # key), the older versions of a key that a newer row in the batch superseded, and rows
    # present in the quarantine table.
    superseded = stats["valid"] - stats["valid_keys"]
    if result.source_rows + superseded != record.rows_merged or missing_quarantine:
        raise ReconciliationError(
            f"{contract.source_system}.{contract.source_name} batch {batch_id}: read {record.rows_read} rows; "
            f"{record.rows_merged} valid but Delta merged {result.source_rows} (+{superseded} superseded in the "
            f"batch); {record.rows_quarantined} bad, {missing_quarantine} of them missing from quarantine"
        )

    batch_max = watermarks.utc_from_micros(stats["max_updated_at_us"])
    candidates = [m for m in (batch_max, None if full_refresh else stored) if m is not None]
    record.watermark_after = watermarks.capped(
        max(candidates) if candidates else None, record.started_at, config.bronze.lookback_minutes
    )
    with phases.timed("fingerprint"):
        return _next_fingerprint(config, contract, record, before, since)


def _next_fingerprint(
    config: Config, contract: Contract, record: StepRecord, before: fingerprints.Fingerprint, since: dt.datetime | None
) -> str | None:
    """The fingerprint of the next extract's window, if this extract read a source that held still.

    Both fingerprints come from one scan: the window this extract read, which must equal what it
    was before the read, and the next window, which lies inside it.
    """
    upcoming = fingerprints.next_window(record.watermark_after, config.bronze.lookback_minutes)
    if since is not None and (upcoming is None or upcoming < since):
        return None  # the next window reaches further back than this read: nothing to vouch for it
    read_again, following = fingerprints.take(config, contract, [since, upcoming])
    if not read_again.same_rows(before):
        log.warning(
            "%s.%s changed while it was extracted: the next run extracts it again",
            contract.source_system,
            contract.source_name,
        )
        return None
    horizon = record.started_at + dt.timedelta(minutes=config.bronze.future_tolerance_minutes)
    return following.stamped(horizon).to_json()


def _watermark_of(stored: dict[tuple[str, str], watermarks.StoredMark], contract: Contract) -> dt.datetime | None:
    mark = stored.get((contract.source_system, contract.source_name))
    return None if mark is None else mark.watermark


def select_contracts(sources: tuple[str, ...], tables: list[str] | None) -> list[Contract]:
    """The contracts of the sources, only the named tables if any (an unknown name fails)."""
    available = [c for source in sources for c in contracts_for(source)]
    if not tables:
        return available
    names = [c.source_name for c in available]
    unknown = [t for t in tables if t not in names]
    if unknown:
        raise ValueError(f"no table {unknown[0]!r} in {' and '.join(sources)}: known tables are {', '.join(names)}")
    return [c for c in available if c.source_name in tables]


def run_extract(
    spark: SparkSession,
    config: Config,
    *,
    sources: tuple[str, ...] = SOURCES,
    tables: list[str] | None = None,
    full_refresh: bool = False,
    run_id: str | None = None,
    progress: Callable[[str], None] = print,
) -> list[StepRecord]:
    """Extract the tables of the given sources; one audit row per table, failed ones included."""
    run_id = run_id or new_run_id()
    selected = select_contracts(sources, tables)
    started = time.monotonic()
    shared = profiling.Phases()
    with shared.timed("tables and watermarks"):
        writer.ensure_bronze_tables(spark, selected)
        watermarks.ensure_table(spark)
        ensure_ops_tables(spark)
        stored = watermarks.get_stored(spark)
        held = writer.tables_with_operator_moves(spark)
    progress(f"extract: {len(selected)} tables, watermarks read in {time.monotonic() - started:.1f} s")

    def extract_one(contract: Contract) -> StepRecord:
        name = f"{contract.source_system}.{contract.source_name}"
        started = time.monotonic()
        progress(f"extract {name}: reading...")
        record = StepRecord(run_id, STEP, contract.source_system, contract.source_name, batch_id=uuid.uuid4().hex)
        try:
            with profiling.spark_jobs(spark, f"extract {name} {record.batch_id}") as work:
                next_fingerprints[name] = extract_table(
                    spark.newSession(),
                    config,
                    contract,
                    record,
                    full_refresh=full_refresh,
                    stored=_watermark_of(stored, contract),
                    held=(contract.source_system, contract.source_name) in held,
                )
            record.profile.update(work.as_profile())
            record.finish("succeeded")
            progress(
                f"extract {name}: read {record.rows_read:,}, merged {record.rows_merged:,} (inserted "
                f"{record.rows_inserted:,}, updated {record.rows_updated:,}), quarantined "
                f"{record.rows_quarantined:,} in {time.monotonic() - started:.1f} s"
            )
        except Exception as exc:
            message = errors.one_line(exc, config.secret_values)
            record.finish("failed", message)
            progress(f"extract {name}: FAILED: {message}")
        return record

    # Tables run side by side (bronze.parallel_tables), each in a session of its own.
    next_fingerprints: dict[str, str | None] = {}
    with ThreadPoolExecutor(max_workers=config.bronze.parallel_tables, thread_name_prefix="extract") as pool:
        records = list(pool.map(extract_one, selected))
    moved = _marks(records, next_fingerprints, stored)
    started = time.monotonic()
    crash_point("before-watermarks")
    with shared.timed("watermarks commit"):
        watermarks.set_watermarks(spark, moved)
    crash_point("before-audit")
    with shared.timed("audit commit"):
        record_steps(spark, records)
    progress(f"extract: watermarks and audit recorded in {time.monotonic() - started:.1f} s")
    profiling.announce(phases=shared.seconds, delta_commits=1 + bool(moved))
    return records


def _marks(
    records: list[StepRecord],
    next_fingerprints: dict[str, str | None],
    stored: dict[tuple[str, str], watermarks.StoredMark],
) -> list[watermarks.Mark]:
    """What ``ops.watermarks`` must change, for one commit.

    A watermark moves only for a table whose bronze commit succeeded, with the fingerprint of
    its next window; a failed table's fingerprint is cleared, so the next run extracts it.
    """
    marks = []
    for r in records:
        key = (r.source_system, r.source_table)
        before = stored.get(key)
        if r.status == "succeeded":
            fingerprint = next_fingerprints.get(f"{r.source_system}.{r.source_table}")
            moved = r.watermark_after is not None and r.watermark_after != r.watermark_before
            if moved:
                marks.append(watermarks.Mark(*key, r.watermark_after, r.batch_id, fingerprint))
            elif before is not None and before.fingerprint != fingerprint:
                marks.append(watermarks.Mark(*key, None, None, fingerprint))
        elif before is not None and before.fingerprint is not None:
            marks.append(watermarks.Mark(*key, None, None, None))
    return marks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="extract", description="Extract sources into bronze Delta tables.")
    parser.add_argument("--source", choices=(*SOURCES, "all"), default="all")
    parser.add_argument("--table", action="append", help="only this table (repeatable)")
    parser.add_argument("--full-refresh", action="store_true", help="ignore watermarks and rebuild the tables")
    parser.add_argument("--run-id", help="pipeline run id to record in ops.pipeline_runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the extract jobs: one Spark application for all tables of the source(s)."""
    from lakehouse.spark import build_session

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config()
    sources = SOURCES if args.source == "all" else (args.source,)
    try:
        select_contracts(sources, args.table)
    except ValueError as exc:
        print(f"extract: error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    spark = build_session(config, f"lakehouse-extract-{args.source}")
    print(f"extract: Spark session ready in {time.monotonic() - started:.1f} s", flush=True)
    profiling.announce_session_ready()
    try:
        records = run_extract(
            spark, config, sources=sources, tables=args.table, full_refresh=args.full_refresh, run_id=args.run_id
        )
    finally:
        profiling.announce_jvm_peak(spark)
        spark.stop()
    failed = [r for r in records if r.status != "succeeded"]
    for record in failed:
        print(f"extract: error: {record.source_system}.{record.source_table}: {record.error_message}", file=sys.stderr)
    return 1 if failed else 0
