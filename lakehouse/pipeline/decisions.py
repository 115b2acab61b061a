"""Is there anything to do? Asked before any Spark application starts, each question bounded.

extract: :func:`tables_to_extract` asks the sources and the stored fingerprints
(lakehouse/bronze/fingerprints.py). validate: :func:`gate_decision` asks, over the Thrift
server, whether a passed gate covers every bronze and quarantined row, whether the last failed
gate's inputs are unchanged ("gate still failed"), and how fresh bronze is. A question with no
answer within ``pipeline.decision_timeout_seconds`` means the step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lakehouse import errors, processes
from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.serving.sql_client import QueryError


class SourcesDown(LakehouseError):
    """Every table with something to extract is in a source that cannot be reached: the
    extract would only fail, so it does not start Spark. One line per table, as the extract's."""

    def __init__(self, unreachable: dict[str, str]) -> None:
        self.lines = [f"{table}: {message}" for table, message in unreachable.items()]
        super().__init__(self.lines[0] if len(self.lines) == 1 else f"{len(self.lines)} tables: {self.lines[0]}")


def tables_to_extract(config: Config, tables: list[str] | None, say: Callable[[str], None]) -> list[str] | None:
    """The source tables (of ``tables``, or all) whose next extract may find something new,
    asked of the sources and the stored fingerprints without Spark (lakehouse/bronze/fingerprints.py).

    [] when none can; None when the question got no answer (the caller extracts them all).
    Raises :class:`SourcesDown` when the only tables to extract are in sources that cannot be
    reached (after ``bronze.source_retries``): the extract would fail on them, after starting
    Spark. When other tables have something new, those tables are extracted too (and fail in
    the extract, as before).
    """
    from lakehouse.bronze import fingerprints
    from lakehouse.bronze.extract import SOURCES, select_contracts

    contracts = select_contracts(SOURCES, tables)
    seconds = config.pipeline.decision_timeout_seconds
    try:
        pending = processes.within(
            seconds,
            "the extract's decision",
            "pipeline.decision_timeout_seconds",
            lambda: fingerprints.pending_tables(config, contracts),
        )
    except fingerprints.SourcesUnreachable as exc:
        if not exc.pending:
            # The extract could only fail on them, after starting Spark for nothing.
            raise SourcesDown(exc.unreachable) from None
        for table, reason in exc.pending.items():
            say(f"extract {table}: {reason}")
        for table, message in exc.unreachable.items():
            say(f"extract {table}: runs, to fail with the others' batch: {message}")
        down = {table.split(".", 1)[1] for table in exc.unreachable}
        return [c.source_name for c in contracts if c.source_name in exc.pending or c.source_name in down]
    except Exception as exc:  # when in doubt, the extract runs
        reason = errors.one_line(exc, config.secret_values)
        say(f"extract runs: cannot tell without Spark whether the sources changed: {reason}")
        return None
    for table, reason in pending.items():
        say(f"extract {table}: {reason}")
    return [c.source_name for c in contracts if c.source_name in pending]


def unvalidated(config: Config) -> str | None:
    """None when a passed gate covers every bronze row and every quarantined one, else what it
    does not cover. Asked over the Thrift server, without starting Spark: the question
    ``transform`` asks before dbt may read bronze
    (:func:`lakehouse.modeling.runner.validated_bronze_versions`), quarantined rows included.
    """
    from lakehouse.modeling.runner import GateNotPassed, validated_bronze_versions

    try:
        validated_bronze_versions(config, quarantined_too=True)
    except GateNotPassed as exc:
        return str(exc).split("; ", 1)[0]
    return None


def ingest_age_hours(config: Config) -> dict[str, float | None]:
    """Hours since each bronze table's newest row was ingested (None: the table is empty), in one query."""
    from lakehouse.bronze.contracts import CONTRACTS, INGESTED_AT
    from lakehouse.serving.sql_client import run_query

    query = " union all ".join(
        f"select '{name}', (unix_micros(current_timestamp()) - unix_micros(max({INGESTED_AT}))) / 3.6e9 from {c.table}"
        for name, c in CONTRACTS.items()
    )
    ages = dict(run_query(config, query, etl=True).rows)
    return {name: ages.get(name) for name in CONTRACTS}


def freshness_warnings(config: Config) -> list[str]:
    """The freshness warnings a skipped gate still gives (quality.freshness_hours)."""
    limit = config.quality.freshness_hours
    return [
        f"bronze.{table}: newest row ingested {age:.0f} h ago, over quality.freshness_hours ({limit:g} h)"
        for table, age in ingest_age_hours(config).items()
        if age is not None and age > limit
    ]


def last_failure(config: Config) -> tuple[str | None, list[str]]:
    """The newest gate run's id when it failed (else None), and what changed among its inputs
    since (:func:`lakehouse.quality.verdicts.failed_run_changes`). Asked over the Thrift server."""
    from lakehouse.bronze.contracts import CONTRACTS, QUARANTINE_TABLE
    from lakehouse.quality import verdicts
    from lakehouse.serving.sql_client import newest_version, newest_version_sql, run_queries

    newest = run_queries(config, [verdicts.newest_gate_run_sql()], etl=True)[0].rows
    if all(verdict == verdicts.PASSED for verdict, _run, _inputs in newest):
        return None, []
    schema, quarantine = QUARANTINE_TABLE.split(".")
    tables = [c.table for c in CONTRACTS.values()]
    if quarantine in {row[1] for row in run_queries(config, [f"show tables in {schema}"], etl=True)[0].rows}:
        tables.append(QUARANTINE_TABLE)
    found = run_queries(config, [newest_version_sql(t) for t in tables], etl=True)
    versions = {table: newest_version(history) for table, history in zip(tables, found, strict=True)}
    current = verdicts.gate_inputs(
        {name: versions[c.table] for name, c in CONTRACTS.items()},
        versions.get(QUARANTINE_TABLE),
        verdicts.rules_fingerprint(config),
    )
    return verdicts.failed_run_changes(newest, current)


@dataclass(frozen=True)
class GateDecision:
    """Whether the gate must run, decided without Spark."""

    reason: str | None  # why it runs; None: no unvalidated batch
    warnings: list[str] = field(default_factory=list)  # freshness, given even when skipped
    failed_run: str | None = None  # the gate failed in this run and nothing changed since


def gate_decision(config: Config) -> GateDecision:
    """Asked over the Thrift server, each question within pipeline.decision_timeout_seconds;
    when a question gets no answer, the gate runs."""
    seconds = config.pipeline.decision_timeout_seconds
    setting = "pipeline.decision_timeout_seconds"
    try:
        reason = processes.within(seconds, "the gate's decision", setting, lambda: unvalidated(config))
    except (QueryError, TimeoutError) as exc:  # when in doubt, the gate runs
        return GateDecision(f"cannot tell without Spark: {exc}")
    if reason is not None:
        try:
            failed_run, changes = processes.within(
                seconds, "the last gate's inputs", setting, lambda: last_failure(config)
            )
        except (QueryError, TimeoutError) as exc:  # the gate runs and decides again, and says why
            return GateDecision(f"{reason}; whether the last failed gate's inputs changed is unknown: {exc}")
        if failed_run is not None and not changes:
            return GateDecision(reason, failed_run=failed_run)
        if failed_run is not None:
            reason = f"{reason}; the last gate (run {failed_run}) failed, and since then: {', '.join(changes)}"
        return GateDecision(reason)
    try:
        return GateDecision(
            None, processes.within(seconds, "the freshness check", setting, lambda: freshness_warnings(config))
        )
    except (QueryError, TimeoutError) as exc:
        return GateDecision(None, [f"freshness not checked: {exc}"])


def still_failed_message(run_id: str) -> str:
    return (
        f"gate still failed (run {run_id}): no bronze or quarantine commit and no rule changed since; fix the "
        "source and extract again, or move the rows with `lakehouse quarantine` (--no-skip runs the gate anyway)"
    )
