"""Extract and validate in one Spark application: the JVM, the SparkSession, Delta's and the
Hive metastore client's start are paid once per run instead of twice.

    SPARK_CONF_DIR=.lakehouse/spark-conf spark-submit jobs/ingest.py --run-id ID \
        [--table T] [--full-refresh] [--gate always]

:func:`extract_and_validate` is the whole of it for any caller that holds a SparkSession (an
orchestrator, for instance): the extract (:func:`lakehouse.bronze.extract.run_extract`, its
crash points and commit order unchanged), then, only when every table's extract succeeded, the
gate's decision (:func:`lakehouse.pipeline.decisions.gate_decision`, the question the pipeline
asks before starting the gate on its own) and the gate (:func:`lakehouse.quality.gate.run_gate`)
when there is an unvalidated batch (when the extract wrote rows to bronze there is one, and
the decision is not asked). It returns the per-table results of both.

``lakehouse pipeline`` runs this job when its ``validate`` step follows ``extract``. The job
tells the pipeline where the validate step begins and how the gate ended by profile lines
(:mod:`lakehouse.profiling`), so the two steps keep their own output, time, profile and audit rows.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import SparkSession

from lakehouse import errors, profiling
from lakehouse.audit import StepRecord
from lakehouse.config import Config, load_config

if TYPE_CHECKING:
    from lakehouse.quality.gate import GateResult

# Profile keys of the job's announcements (read by lakehouse/pipeline/jobs.py and steps.py).
GATE_KEY = "gate"  # how the gate's part ended: passed, failed, skipped, still_failed or error
GATE_DETAIL_KEY = "gate_detail"
# Exit codes: the extract's (1: a table failed; the gate did not run), then the gate's.
EXIT_OK, EXIT_EXTRACT_FAILED, EXIT_GATE_FAILED, EXIT_GATE_ERROR = 0, 1, 3, 4
GATE_EXIT = {"passed": EXIT_OK, "skipped": EXIT_OK, "failed": EXIT_GATE_FAILED, "still_failed": EXIT_GATE_FAILED}


@dataclass
class IngestResult:
    """What one extract-and-validate did, per table."""

    extract: list[StepRecord]
    gate: str | None = None  # as GATE_KEY says; None: not reached (an extract failed)
    gate_detail: str = ""  # which run still failed, the error, or the gate's summary
    verdict: GateResult | None = None  # the gate's result when it ran
    warnings: list[str] = field(default_factory=list)  # freshness warnings of a skipped gate

    @property
    def extract_failed(self) -> list[StepRecord]:
        return [r for r in self.extract if r.status != "succeeded"]

    def tables(self) -> dict[str, dict[str, Any]]:
        """Per source table: the extract's status and counts, and the gate's status on its batch."""
        found: dict[str, dict[str, Any]] = {}
        for r in self.extract:
            found[r.source_table] = {
                "extract": r.status,
                "rows_read": r.rows_read,
                "rows_merged": r.rows_merged,
                "rows_quarantined": r.rows_quarantined,
                "error": r.error_message,
            }
        if self.verdict is not None:
            failed = {o.table for o in self.verdict.failures}
            for table, run in self.verdict.tables.items():
                status = "skipped" if run.skipped else "failed" if table in failed else "passed"
                found.setdefault(table, {}).update(validate=status, rows_validated=run.rows)
        return found


def extract_and_validate(
    spark: SparkSession,
    config: Config,
    *,
    run_id: str,
    tables: list[str] | None = None,
    full_refresh: bool = False,
    always_validate: bool = False,
    progress: Callable[[str], None] = print,
) -> IngestResult:
    """Extract (``tables``, or all), then validate what is unvalidated, in ``spark``'s application.

    The gate runs only when every table's extract succeeded, and then when the gate's decision
    finds an unvalidated batch (or ``always_validate``); a gate that failed on the same inputs
    before is reported as ``still_failed`` without running it again.
    """
    from lakehouse.bronze.extract import run_extract
    from lakehouse.pipeline.decisions import gate_decision, still_failed_message
    from lakehouse.quality.batches import GateError
    from lakehouse.quality.gate import run_gate

    records = run_extract(spark, config, tables=tables, full_refresh=full_refresh, run_id=run_id, progress=progress)
    result = IngestResult(records)
    if result.extract_failed:
        return result
    profiling.announce_jvm_peak(spark)  # the extract's
    profiling.announce_step_begins("validate")
    written = sum((r.rows_inserted or 0) + (r.rows_updated or 0) for r in records)
    if written and not always_validate:
        # New rows in bronze are a batch no gate has seen: the decision could only say "run"
        # (and a gate that failed before read other inputs), so it is not asked.
        progress(f"the gate runs: the extract wrote {written:,} row(s) to bronze")
    elif not always_validate:
        decision = gate_decision(config)
        if decision.failed_run is not None:
            result.gate, result.gate_detail = "still_failed", still_failed_message(decision.failed_run)
            return result
        if decision.reason is None:
            result.gate, result.warnings = "skipped", decision.warnings
            return result
        progress(f"the gate runs: {decision.reason}")
    try:
        fresh = [str(r.source_table) for r in records if (r.rows_inserted or 0) + (r.rows_updated or 0)]
        gate = run_gate(spark, config, run_id=run_id, progress=progress, written=fresh)
    except GateError as exc:
        result.gate, result.gate_detail = "error", str(exc)
        return result
    result.verdict = gate
    result.gate, result.gate_detail = ("passed" if gate.passed else "failed"), gate.summary()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ingest", description="Extract into bronze, then the quality gate.")
    parser.add_argument("--table", action="append", help="only this source table (repeatable)")
    parser.add_argument("--full-refresh", action="store_true", help="ignore watermarks and rebuild the tables")
    parser.add_argument("--run-id", required=True, help="pipeline run id to record in ops.pipeline_runs")
    parser.add_argument(
        "--gate", choices=("auto", "always"), default="auto", help="always: validate even with nothing unvalidated"
    )
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of jobs/ingest.py; exit codes EXIT_*."""
    from lakehouse.spark import build_session

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config()
    started = time.monotonic()
    spark = build_session(config, "lakehouse-ingest")
    print(f"extract: Spark session ready in {time.monotonic() - started:.1f} s", flush=True)
    profiling.announce_session_ready()
    return run_job(spark, config, args, stop_session=True)


def run_job(spark: SparkSession, config: Config, args: argparse.Namespace, *, stop_session: bool) -> int:
    """jobs/ingest.py's work in ``spark``'s application: its output, its profile marks, its exit
    code. ``stop_session``: the application ends with it (the ingest server's stays up)."""
    try:
        result = extract_and_validate(
            spark,
            config,
            run_id=args.run_id,
            tables=args.table,
            full_refresh=args.full_refresh,
            always_validate=args.gate == "always",
            progress=say,
        )
    except Exception as exc:
        print(f"ingest: error: {errors.one_line(exc, config.secret_values)}", file=sys.stderr, flush=True)
        return EXIT_GATE_ERROR
    finally:
        # On a cluster: what each executor ran, for the profile and `lakehouse bench --cluster`.
        executors = profiling.executor_summary(spark)
        if executors is not None:
            profiling.announce(**{profiling.EXECUTORS_KEY: executors})
        profiling.announce_jvm_peak(spark)  # the application's, at its end
        if stop_session:
            spark.stop()
    for record in result.extract_failed:
        print(f"extract: error: {record.source_system}.{record.source_table}: {record.error_message}", file=sys.stderr)
    if result.gate is None:
        return EXIT_EXTRACT_FAILED
    for warning in result.warnings:
        say(f"warning: {warning}")
    if result.gate in ("passed", "failed"):
        say(result.gate_detail)
    profiling.announce(**{GATE_KEY: result.gate, GATE_DETAIL_KEY: result.gate_detail, "warnings": result.warnings})
    if result.gate == "error":
        print(f"validate: error: {result.gate_detail}", file=sys.stderr, flush=True)
    return GATE_EXIT.get(result.gate, EXIT_GATE_ERROR)
