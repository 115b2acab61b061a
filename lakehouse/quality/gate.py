"""The quality gate: run the suites of ``expectations/`` on the newest bronze batch of each table.

For every bronze table, in one Spark application (``bronze.parallel_tables`` tables at once):

1. the batch (its ``_batch_id``; see :mod:`lakehouse.quality.batches`) is read with only the
   columns the suites use, foreign keys are resolved against the referenced bronze tables
   (``_orphan_<fk>``) and the ingest age is added; the result is cached once (``persist``) for
   the batch and quarantine suites and unpersisted afterwards;
2. ``bronze.<table>.batch`` runs on it; ``bronze.<table>.quarantine`` runs on the batch's rows
   plus its rows in ``bronze.quarantine``; ``bronze.<table>.table`` runs on the key columns of
   the whole table (not null, unique); each suite in one aggregate query, plus one small query
   per check that found failing rows (:mod:`lakehouse.quality.evaluate`);
3. the outcomes go to ``ops.dq_results`` (one commit), the Data Docs HTML to
   ``<state>/reports/data_docs/``, and one ``validate`` step row per table to
   ``ops.pipeline_runs``.

A failed critical expectation fails the gate: :func:`main` exits 1 and the pipeline must stop
before dbt. Failed warnings are reported and the gate passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from expectations import TABLES, build_all
from expectations.common import (
    QUARANTINED,
    RECORD_KEY,
    TableSuites,
    default_parameters,
)
from lakehouse import errors, profiling
from lakehouse.audit import StepRecord, new_run_id, record_steps
from lakehouse.bronze.contracts import CONTRACTS, INGESTED_AT, QUARANTINE_TABLE
from lakehouse.bronze.watermarks import epoch_micros
from lakehouse.config import Config, load_config
from lakehouse.quality import batches, evaluate, frames, results
from lakehouse.quality.batches import BatchRef, GateError
from lakehouse.quality.results import Outcome, Verdict
from lakehouse.quality.runner import GxRunner

log = logging.getLogger(__name__)
STEP = "validate"
DATA_DOCS_DIR = Path("reports") / "data_docs"
EXIT_PASSED, EXIT_FAILED, EXIT_ERROR = 0, 1, 2

__all__ = ["GateError", "GateResult", "bench_validate", "main", "run_gate"]


def data_docs_dir(config: Config) -> Path:
    return config.home / DATA_DOCS_DIR


@dataclass
class TableRun:
    """What the gate saw of one table: its batch, the batch's size, and how long it took."""

    batch: BatchRef
    rows: int | None = None
    quarantined: int | None = None
    seconds: float = 0.0
    high_water_us: int | None = None  # the newest ingest or quarantine time validated
    skipped: bool = False  # nothing pending: no suite ran, no verdict was stored


@dataclass
class GateResult:
    """The gate's verdict: ``passed`` unless a critical expectation failed."""

    run_id: str
    tables: dict[str, TableRun]
    outcomes: list[Outcome]
    docs_path: Path | None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        """Failed critical expectations: the pipeline must stop."""
        return [o for o in self.outcomes if o.failed_critical]

    @property
    def warnings(self) -> list[Outcome]:
        """Failed warnings, except those whose critical twin (same check) failed too."""
        failed_checks = {o.check for o in self.failures}
        return [o for o in self.outcomes if o.failed_warning and o.check not in failed_checks]

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """The printed report: verdict, each failed expectation, the batches, the Data Docs path."""
        failures, warnings = self.failures, self.warnings
        if failures:
            verdict = f"FAILED: {len(failures)} critical expectation(s) failed, {len(warnings)} warning(s)"
        elif warnings:
            verdict = f"PASSED with {len(warnings)} warning(s)"
        else:
            verdict = "PASSED"
        lines = [f"quality gate {verdict} (run {self.run_id}, {len(self.outcomes)} expectations, {self.seconds:.1f} s)"]
        if failures:
            lines.append("critical failures:")
            lines += [f"  {results.describe(o)}" for o in failures]
        if warnings:
            lines.append("warnings:")
            lines += [f"  {results.describe(o)}" for o in warnings]
        lines.append("batches:")
        for table, run in self.tables.items():
            if run.skipped:
                lines.append(f"  bronze.{table}: nothing new since the last passed gate (version {run.batch.version})")
                continue
            size = "" if run.rows is None else f": {run.rows:,} rows, {run.quarantined or 0:,} quarantined"
            lines.append(f"  bronze.{table}: {run.batch.describe()}{size}")
        lines += self.notes
        if self.docs_path is not None:
            lines.append(f"data docs: {self.docs_path}")
        return "\n".join(lines)


def _versions(spark: SparkSession) -> dict[str, int | None]:
    """The newest Delta version of every bronze table (by contract name) and of the quarantine
    table (by its table name); None for a table that does not exist yet."""

    def version(table: str) -> int | None:
        if not spark.catalog.tableExists(table):
            return None
        return int(spark.sql(f"describe history {table} limit 1").first()["version"])

    return {**{name: version(c.table) for name, c in CONTRACTS.items()}, QUARANTINE_TABLE: version(QUARANTINE_TABLE)}


def _inputs(config: Config, versions: dict[str, int | None]) -> str:
    """What this gate run reads besides the rows' values: every bronze table's version, the
    quarantine table's, and the rules (stored with the verdicts; see verdicts.gate_inputs)."""
    from lakehouse.quality.verdicts import gate_inputs, rules_fingerprint

    bronze = {name: versions[name] for name in CONTRACTS}
    return gate_inputs(bronze, versions[QUARANTINE_TABLE], rules_fingerprint(config))


def _parameters(config: Config) -> dict[str, Any]:
    return default_parameters(
        min_batch_rows=config.quality.min_batch_rows,
        max_batch_rows=config.quality.max_batch_rows,
        freshness_hours=config.quality.freshness_hours,
        today=dt.datetime.now(dt.UTC).date(),
    )


def _batch_frame(spark: SparkSession, suites: TableSuites, ref: BatchRef) -> DataFrame:
    """The batch's rows, only the columns the suites read, with the derived columns added."""
    read = frames.suite_columns(e.configuration.kwargs for e in suites.batch.expectations)
    foreign = [fk.column for fk in suites.foreign_keys]
    wanted = [*suites.key, *foreign, INGESTED_AT, *read]
    columns = list(dict.fromkeys(c for c in wanted if not frames.is_derived(c)))
    frame = batches.read_batch(spark, ref, columns)
    for fk in suites.foreign_keys:
        known = batches.read_known_keys(spark, fk.table, fk.ref_column, fk.column)
        frame = frames.with_orphan_column(frame, fk, known)
    return frames.with_ingest_age(frame)


def _quarantined(spark: SparkSession, ref: BatchRef) -> DataFrame:
    if spark.catalog.tableExists(QUARANTINE_TABLE):
        return batches.read_quarantined(spark, ref)
    return spark.createDataFrame([], T.StructType([T.StructField("record_key", T.StringType())]))


@contextmanager
def cached(frame: DataFrame) -> Iterator[DataFrame]:
    """The frame persisted while the suites run on it (GE's own ``persist`` is off), then released."""
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield frame
    finally:
        frame.unpersist()


def validate_table(
    spark: SparkSession, runner: GxRunner, suites: TableSuites, run: TableRun, parameters: dict[str, Any]
) -> list[Outcome]:
    """Run the three suites of one table; fill ``run`` with the batch's size."""
    ref = run.batch
    key = list(suites.key)

    def validate(suite: Any, frame: DataFrame, index_columns: list[str]) -> list[Outcome]:
        validation = evaluate.validate(
            suite,
            frame,
            parameters=parameters,
            index_columns=index_columns,
            sample_size=max(1, runner.example_keys),
            batch_id=ref.batch_id,
        )
        runner.record(suite, validation)
        return results.outcomes_from_validation(
            validation,
            table=ref.table,
            batch_id=ref.batch_id,
            key_columns=index_columns,
            example_limit=runner.example_keys,
        )

    with cached(_batch_frame(spark, suites, ref)) as batch:
        run.rows, run.high_water_us = batch.agg(F.count(F.lit(1)), epoch_micros(F.max(INGESTED_AT))).first()
        outcomes = validate(suites.batch, batch, key)
        with cached(frames.quarantine_frame(batch, _quarantined(spark, ref))) as landing:
            quarantine_outcomes = validate(suites.quarantine, landing, [RECORD_KEY])
    run.quarantined = next((o.unexpected_count or 0 for o in quarantine_outcomes if o.column == QUARANTINED), 0)
    if ref.pending:
        newest_quarantined = batches.newest_quarantined_us(spark, ref)
        run.high_water_us = max((t for t in (run.high_water_us, newest_quarantined, ref.since_us) if t), default=None)
    # Table-level: the keys of the whole table (the batch id is recorded for reference only).
    # Reading only the keys the batch touches (a semi-join with its keys) was tried: 8 more Spark
    # jobs and 1.5-2 s more per table at the small scale than a scan of the whole key column.
    with cached(batches.read_keys(spark, ref.table, key)) as keys:
        table_outcomes = validate(suites.table_level, keys, key)
    return [*outcomes, *quarantine_outcomes, *table_outcomes]


def _step_record(run_id: str, run: TableRun, outcomes: list[Outcome], error: str | None) -> StepRecord:
    contract = CONTRACTS[run.batch.table]
    record = StepRecord(
        run_id,
        STEP,
        contract.source_system,
        contract.source_name,
        batch_id=run.batch.batch_id,
        rows_read=run.rows,
        rows_quarantined=run.quarantined,
    )
    # The table's validation started run.seconds ago (the record is made when it ends).
    record.started_at = record.started_at - dt.timedelta(seconds=run.seconds)
    failed = [o for o in outcomes if o.failed_critical]
    if error:
        return record.finish("failed", error)
    if failed:
        names = "; ".join(f"{o.expectation}({o.column or ''}) {o.unexpected_count or o.observed_value}" for o in failed)
        return record.finish("failed", f"{len(failed)} critical expectation(s) failed: {names}")
    return record.finish("succeeded")


def run_gate(
    spark: SparkSession,
    config: Config,
    *,
    run_id: str,
    batch_ids: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    written: Collection[str] = (),
) -> GateResult:
    """Validate bronze batches; store outcomes, Data Docs and step rows; return the verdict.

    ``batch_ids`` maps bronze table names (``users``, ``content``, ``viewing_sessions``,
    ``ratings``) to the batch to validate; only those tables are validated. ``None`` validates
    every table at its newest batch. ``progress`` receives one line per table as it goes.
    ``written`` names tables the caller has just written new rows to (the extract of the same
    run): they hold rows no gate has seen, so the gate does not query whether they do.
    Raises :class:`GateError` when the gate cannot run at all (unknown table, missing bronze
    table); a failure while validating one table is recorded as a critical ``gate_error``
    outcome for that table. The caller decides what a failed gate stops: ``result.passed``.
    """
    report = progress or (lambda _message: None)
    started = time.monotonic()
    tables = list(batch_ids) if batch_ids is not None else list(TABLES)
    shared = profiling.Phases()
    with shared.timed("batches"):
        batches.check_tables(spark, tables)
        versions = _versions(spark)
        inputs = _inputs(config, versions)
        suites = build_all(tables)
        refs = batches.resolve_batches(spark, tables, batch_ids, versions=versions)
    parameters = _parameters(config)
    runner = GxRunner(data_docs_dir(config), run_id, example_keys=config.quality.example_keys)

    def validate_ref(ref: BatchRef) -> tuple[TableRun, list[Outcome], StepRecord]:
        run = TableRun(ref)
        if ref.pending and ref.table not in written and not batches.has_pending(spark, ref):
            run.skipped, run.rows = True, 0
            report(f"validate bronze.{ref.table}: nothing new since the last passed gate")
            return run, [], _step_record(run_id, run, [], None)
        table_started = time.monotonic()
        report(f"validate bronze.{ref.table}: batch {ref.batch_id}...")
        error = None
        work = profiling.SparkWork()
        try:
            with profiling.spark_jobs(spark, f"validate {ref.table} {ref.batch_id}") as work:
                table_outcomes = validate_table(spark, runner, suites[ref.table], run, parameters)
        except Exception as exc:  # recorded as a critical outcome: nothing vouches for the table
            error = errors.one_line(exc, config.secret_values)
            log.warning("validating bronze.%s failed: %s", ref.table, error)
            table_outcomes = [results.gate_error(ref.table, ref.batch_id, error)]
        run.seconds = time.monotonic() - table_started
        record = _step_record(run_id, run, table_outcomes, error)
        record.profile.update({**work.as_profile(), "expectations": len(table_outcomes)})
        failed = sum(o.failed_critical for o in table_outcomes)
        report(
            f"validate bronze.{ref.table}: {run.rows or 0:,} rows, {failed} critical failure(s), {run.seconds:.1f} s"
        )
        return run, table_outcomes, record

    # Tables run side by side (bronze.parallel_tables, as in the extract): each is a few small
    # Spark jobs that wait on one another, so two at once use the cores the other leaves idle.
    with ThreadPoolExecutor(max_workers=config.bronze.parallel_tables, thread_name_prefix="validate") as pool:
        done = list(pool.map(validate_ref, refs))
    runs = {run.batch.table: run for run, _, _ in done}
    outcomes = [o for _, table_outcomes, _ in done for o in table_outcomes]
    records = [record for _, _, record in done]
    verdicts = [
        Verdict(
            run.batch.table,
            not any(o.failed_critical for o in table_outcomes),
            run.batch.version,
            run.high_water_us,
            run.rows,
        )
        for run, table_outcomes, _ in done
        if run.batch.pending and not run.skipped
    ]

    notes = []
    docs_path: Path | None = None
    try:
        with shared.timed("data docs"):
            docs_path = runner.build_docs()
    except Exception as exc:  # the verdict stands without its HTML; say so
        notes.append(f"data docs: not written ({errors.one_line(exc, config.secret_values)})")
    with shared.timed("results, verdicts and audit commits"):
        results.write_results(spark, run_id, outcomes)
        # A table the gate could not validate (an error, not the data) may pass when run again:
        # without inputs, the pipeline never reports such a run as "still failed".
        errored = any(o.expectation == results.GATE_ERROR for o in outcomes)
        results.write_verdicts(spark, run_id, verdicts, None if errored else inputs)
        record_steps(spark, records)
    profiling.announce(phases=shared.seconds, delta_commits=sum(map(bool, (outcomes, verdicts, records))))
    return GateResult(run_id, runs, outcomes, docs_path, time.monotonic() - started, notes)


def bench_validate(spark: SparkSession, config: Config) -> dict[str, Any]:
    """Time the gate on the current bronze (newest batch of every table); for `make bench`."""
    result = run_gate(spark, config, run_id=f"bench-{new_run_id()}")
    return {
        "validate_seconds": round(result.seconds, 2),
        "passed": result.passed,
        "expectations": len(result.outcomes),
        "critical_failures": len(result.failures),
        "warnings": len(result.warnings),
        "tables": {
            table: {"batch_id": run.batch.batch_id, "rows": run.rows, "seconds": round(run.seconds, 2)}
            for table, run in result.tables.items()
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="validate_bronze", description="Quality gate on the newest bronze batch.")
    parser.add_argument("--batch-id", help="validate this batch (of the table it belongs to) instead of the newest")
    parser.add_argument("--run-id", help="pipeline run id to record in ops.dq_results and ops.pipeline_runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of jobs/validate_bronze.py: 0 passed (warnings allowed), 1 failed, 2 error."""
    from lakehouse.spark import build_session

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config()
    spark = build_session(config, "lakehouse-validate")
    profiling.announce_session_ready()
    try:
        batch_ids = None
        if args.batch_id:
            batch_ids = dict.fromkeys(batches.tables_of_batch(spark, args.batch_id), args.batch_id)
        result = run_gate(
            spark,
            config,
            run_id=args.run_id or new_run_id(),
            batch_ids=batch_ids,
            progress=lambda message: print(message, flush=True),
        )
    except GateError as exc:
        print(f"validate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        log.debug("the gate could not run", exc_info=True)
        print(f"validate: error: the gate could not run: {errors.one_line(exc, config.secret_values)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        profiling.announce_jvm_peak(spark)
        spark.stop()
    print(result.summary(), flush=True)
    if not result.passed:
        print(
            f"validate: error: quality gate failed: {len(result.failures)} critical expectation(s) failed "
            "(listed above); nothing downstream may run on this batch",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_PASSED
