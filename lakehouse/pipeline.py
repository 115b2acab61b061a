"""The step graph behind `lakehouse pipeline`.

    up -> sources -> extract -> validate -> transform -> maintain -> summary

- ``up`` starts the local services (a no-op when they run).
- ``sources`` generates and loads the chosen scale, only when the sources are empty.
- ``extract`` and ``validate`` are Spark applications (one JVM each, all tables inside).
- ``validate`` is the gate: a critical failure stops the run before ``transform``, so silver
  and gold keep serving the last good data.
- ``transform`` runs dbt through the Thrift server; ``maintain`` runs OPTIMIZE and VACUUM
  through it too, and is skipped when the run changed nothing.

Transient failures (a source or server not answering yet) are retried with backoff a
bounded number of times; real failures (a failed gate, a SQL error) stop the run at once.
The writer lock (lakehouse/locking.py: this state directory's file lock, then the lakehouse's
advisory lock in PostgreSQL once ``up`` has run) keeps two writers from running at once. Every step is recorded in
``ops.pipeline_runs`` under the run's id.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from lakehouse import errors, processes, profiling
from lakehouse.audit import RUNS_TABLE, StepRecord, new_run_id, record_over_thrift
from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.locking import LockedError, run_lock, shared_lock
from lakehouse.serving.sql_client import QueryError

if TYPE_CHECKING:
    from lakehouse.serving.sql_client import QueryResult

T = TypeVar("T")
STEPS = ("up", "sources", "extract", "validate", "transform", "maintain", "summary")
# Exit codes of jobs/validate_bronze.py.
GATE_FAILED = 1
GATE_COULD_NOT_RUN = 2
# A table whose newest commit is one of these has not changed since it was last maintained.
MAINTENANCE_OPERATIONS = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES")
TICK_SECONDS = 1.0
# Output of Spark and the JVM that says nothing to a person running the pipeline.
NOISE = re.compile(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARN)|WARNING: Using incubator|\s+at |\s*$)")
TRANSIENT = re.compile(
    r"unreachable|Connection refused|could not connect|TTransportException|did not become ready|"
    r"cannot reach the Thrift server",
    re.IGNORECASE,
)


class PipelineError(RuntimeError):
    """A step failed for a reason that retrying will not fix."""


class TransientError(RuntimeError):
    """A step failed because something was not reachable yet; worth retrying."""


@dataclass
class StepResult:
    name: str
    status: str = "pending"  # succeeded, failed, skipped, pending
    seconds: float = 0.0
    attempts: int = 0
    rows_read: int | None = None
    rows_written: int | None = None
    rows_quarantined: int | None = None
    detail: str = ""
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    profile: dict[str, Any] = field(default_factory=dict)  # where the time went (lakehouse/profiling.py)


@dataclass
class Options:
    from_step: str | None = None
    only: str | None = None
    full_refresh: bool = False
    scale: str = "small"
    quiet: bool = False
    log_format: str = "text"  # text or json
    wait: bool = False
    # Fill empty sources with synthetic data even when they are not the project's own local
    # servers (LAKEHOUSE_POSTGRES_URL / LAKEHOUSE_MONGODB_URI set, as in compose).
    generate_sources: bool = False
    profile: bool = False  # print where the run's time went after the summary
    no_skip: bool = False  # run every step even when the lakehouse's state says it has nothing to do


@dataclass
class Context:
    config: Config
    options: Options
    run_id: str
    out: TextIO = field(default=sys.stdout)
    changed: bool = True  # did extract or sources change anything
    spark_applications: int = 0  # spark-submits started by this run

    def event(self, kind: str, step: str, message: str = "", **data: object) -> None:
        """One progress event: a line of text, or a JSON object per line for schedulers."""
        if self.options.log_format == "json":
            record = {"ts": dt.datetime.now(dt.UTC).isoformat(), "run_id": self.run_id, "event": kind, "step": step}
            record.update({"message": message} if message else {})
            record.update(data)
            print(json.dumps(record, default=str), file=self.out, flush=True)
        elif not self.options.quiet or kind in ("error", "summary", "profile"):
            print(message, file=self.out, flush=True)


# ------------------------------------------------------------------ running steps


@dataclass
class JobRun:
    """One spark-submit of a step: its exit code, output, and what it announced for the profile."""

    code: int
    output: str
    timed_out: bool
    announced: dict[str, Any]


def _stream(ctx: Context, step: str, command: list[str], env: dict[str, str], timeout: float) -> JobRun:
    """Run a command, relaying its meaningful lines as progress; stop it after ``timeout`` s."""
    lines: list[str] = []
    announced: dict[str, Any] = {}

    def relay(line: str) -> None:
        values = profiling.parse_line(line)
        if values is not None:
            announced.update(values)
            return
        lines.append(line)
        if not NOISE.match(line):
            ctx.event("output", step, f"  {line}", line=line)

    finished = processes.stream(command, on_line=relay, timeout=timeout, env=env, cwd=PROJECT_ROOT)
    return JobRun(finished.code, "\n".join(lines), finished.timed_out, announced)


def _failure_line(output: str) -> str:
    """The most telling line of a failed step's output."""
    meaningful = [line for line in output.splitlines() if not NOISE.match(line)]
    for line in reversed(meaningful):
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()
    return meaningful[-1].strip() if meaningful else "no output"


def _check(code: int, output: str, what: str) -> None:
    if code == 0:
        return
    line = _failure_line(output)
    if TRANSIENT.search(output):
        raise TransientError(f"{what}: {line}")
    raise PipelineError(f"{what}: {line}")


def _sql(ctx: Context, statement: str) -> QueryResult:
    """One statement of the pipeline's own work on the Thrift server (the etl pool)."""
    from lakehouse.serving.sql_client import run_query

    return run_query(ctx.config, statement, etl=True)


def _audit_counts(ctx: Context, step: str) -> tuple[int | None, int | None, int | None]:
    """Rows read, written (inserted+updated) and quarantined for this run's step, from the audit."""
    result = _sql(
        ctx,
        f"select sum(rows_read), sum(coalesce(rows_inserted, 0) + coalesce(rows_updated, 0)), sum(rows_quarantined) "
        f"from {RUNS_TABLE} where run_id = '{ctx.run_id}' and step = '{step}' and source_table is not null",
    )
    read, written, quarantined = result.rows[0]
    return read, written, quarantined


def step_up(ctx: Context, result: StepResult) -> None:
    from lakehouse import services
    from lakehouse.services import ServiceError

    try:
        started = services.up(ctx.config, report=lambda m: ctx.event("output", "up", f"  {m}"))
    except ServiceError as exc:
        raise TransientError(str(exc)) from None
    result.detail = f"started {', '.join(started)}" if started else "already running"


def generation_refusal(config: Config, options: Options) -> str | None:
    """Why empty sources may not be filled with synthetic data, or None when they may.

    The project's own local servers are filled by default; external ones only on request,
    so synthetic rows never land in a real database whose tables happen to be empty.
    """
    if options.generate_sources:
        return None
    external = [
        name
        for name, embedded in (
            (config.postgres.display(), config.postgres.embedded),
            (f"mongodb {config.mongodb.database}", config.mongodb.embedded),
        )
        if not embedded
    ]
    if not external:
        return None
    return (
        f"the sources are empty and {' and '.join(external)} {'is' if len(external) == 1 else 'are'} not the "
        "project's own local server: load your data first, or pass --generate-sources to fill them with "
        f"the synthetic {options.scale} scale"
    )


def step_sources(ctx: Context, result: StepResult) -> None:
    from lakehouse.sources.generate import generate
    from lakehouse.sources.load import load_sources, sources_empty

    if not sources_empty(ctx.config):
        result.detail = "sources already loaded"
        return
    refusal = generation_refusal(ctx.config, ctx.options)
    if refusal:
        raise PipelineError(refusal)
    data = ctx.config.data_dir / ctx.options.scale
    if not (data / "manifest.json").exists():
        ctx.event("output", "sources", f"  sources are empty: generating the {ctx.options.scale} scale into {data}")
        generate(data, scale=ctx.options.scale, progress=lambda m: ctx.event("output", "sources", f"  {m}"))
    ctx.event("output", "sources", f"  loading {data} into PostgreSQL and MongoDB")
    counts = load_sources(ctx.config, data, progress=lambda m: ctx.event("output", "sources", f"  {m}"))
    result.rows_written = sum(counts.values())
    result.detail = f"generated and loaded the {ctx.options.scale} scale"


def _spark_job(ctx: Context, result: StepResult, job: str, args: list[str]) -> tuple[int, str]:
    """spark-submit one job for the step; its profile goes to ``result``; (exit code, output)."""
    from lakehouse.spark import job_timeout_message, spark_env, spark_submit_command, write_spark_conf

    write_spark_conf(ctx.config)
    step = result.name
    command = spark_submit_command(ctx.config, str(PROJECT_ROOT / "jobs" / job), args, app_name=f"lakehouse-{step}")
    submitted_at = time.time()
    ctx.spark_applications += 1
    run = _stream(ctx, step, command, spark_env(ctx.config), ctx.config.pipeline.job_timeout_seconds)
    result.profile = profiling.application_profile(run.announced, submitted_at, time.time())
    if run.timed_out:
        raise PipelineError(job_timeout_message(ctx.config, job))
    return run.code, run.output


def tables_to_extract(config: Config, tables: list[str] | None, say: Callable[[str], None]) -> list[str] | None:
    """The source tables (of ``tables``, or all) whose next extract may find something new,
    asked of the sources and the stored fingerprints without Spark (lakehouse/bronze/fingerprints.py).

    [] when none can; None when the question got no answer (the caller extracts them all).
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
    except Exception as exc:  # when in doubt, the extract runs
        reason = errors.one_line(exc, config.secret_values)
        say(f"extract runs: cannot tell without Spark whether the sources changed: {reason}")
        return None
    for table, reason in pending.items():
        say(f"extract {table}: {reason}")
    return [c.source_name for c in contracts if c.source_name in pending]


def step_extract(ctx: Context, result: StepResult) -> None:
    args = ["--run-id", ctx.run_id] + (["--full-refresh"] if ctx.options.full_refresh else [])
    if not (ctx.options.no_skip or ctx.options.full_refresh):
        tables = tables_to_extract(ctx.config, None, lambda m: ctx.event("output", "extract", f"  {m}"))
        if tables == []:
            from lakehouse.bronze.contracts import CONTRACTS

            ctx.changed = False
            result.status = "skipped"
            result.detail = f"nothing new in the {len(CONTRACTS)} source tables"
            return
        for table in tables or []:
            args += ["--table", table]
    code, output = _spark_job(ctx, result, "extract.py", args)
    _check(code, output, "extract failed")
    result.rows_read, result.rows_written, result.rows_quarantined = _audit_counts(ctx, "extract")
    ctx.changed = bool(result.rows_written) or ctx.options.full_refresh
    result.detail = "" if ctx.changed else "no new or changed rows"


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


def still_failed(config: Config) -> str | None:
    """The newest gate run's id when it failed and nothing it read has changed since: no commit
    to a bronze table or to the quarantine, the same rules. Asked over the Thrift server."""
    from lakehouse.bronze.contracts import CONTRACTS, QUARANTINE_TABLE
    from lakehouse.quality import verdicts
    from lakehouse.serving.sql_client import newest_version, newest_version_sql, run_queries

    newest = run_queries(config, [verdicts.newest_gate_run_sql()], etl=True)[0].rows
    if all(verdict == verdicts.PASSED for verdict, _run, _inputs in newest):
        return None
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
    return verdicts.still_failed_run(newest, current)


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
            failed_run = processes.within(seconds, "the last gate's inputs", setting, lambda: still_failed(config))
        except (QueryError, TimeoutError):
            failed_run = None  # the gate runs and decides again
        return GateDecision(reason, failed_run=failed_run)
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


def step_validate(ctx: Context, result: StepResult) -> None:
    if not ctx.options.no_skip:
        decision = gate_decision(ctx.config)
        if decision.failed_run is not None:
            raise PipelineError(still_failed_message(decision.failed_run))
        if decision.reason is None:
            from lakehouse.bronze.contracts import CONTRACTS

            for warning in decision.warnings:
                ctx.event("output", "validate", f"  warning: {warning}")
            result.status = "skipped"
            result.detail = f"no unvalidated batch in the {len(CONTRACTS)} bronze tables" + (
                f"; {len(decision.warnings)} warning(s)" if decision.warnings else ""
            )
            return
        ctx.event("output", "validate", f"  the gate runs: {decision.reason}")
    code, output = _spark_job(ctx, result, "validate_bronze.py", ["--run-id", ctx.run_id])
    if code == GATE_FAILED:
        raise PipelineError("quality gate failed: transform skipped, silver and gold keep the last good data")
    _check(code, output, "validate could not run")
    result.rows_read = _audit_counts(ctx, "validate")[0]


def step_transform(ctx: Context, result: StepResult) -> None:
    from lakehouse.modeling.runner import EXIT_REFUSED, SKIPPED_KEY, run_transform

    code = run_transform(
        ctx.config,
        full_refresh=ctx.options.full_refresh,
        run_id=ctx.run_id,
        profile=result.profile,
        allow_skip=not ctx.options.no_skip,
    )
    if code == EXIT_REFUSED:
        raise PipelineError("transform refused: bronze holds rows no passed quality gate covers (see above)")
    if code != 0:
        raise PipelineError("dbt build failed (see the failing models and tests above)")
    if SKIPPED_KEY in result.profile:
        result.status = "skipped"
        result.detail = result.profile[SKIPPED_KEY]


def _delta_tables(ctx: Context, schema: str) -> list[str]:
    try:
        tables = {row[1] for row in _sql(ctx, f"show tables in {schema}").rows}
        views = {row[1] for row in _sql(ctx, f"show views in {schema}").rows}
    except QueryError:
        return []  # the schema does not exist yet
    return sorted(tables - views)


def _maintain_table(ctx: Context, name: str) -> bool:
    """OPTIMIZE and VACUUM one table by the retention policy; False if it had not changed."""
    newest = _sql(ctx, f"describe history {name} limit 1")
    operation = newest.rows[0][newest.columns.index("operation")] if newest.rows else None
    if operation in MAINTENANCE_OPERATIONS:
        return False
    retention = f"interval {ctx.config.pipeline.vacuum_retain_hours} hours"
    properties = dict(_sql(ctx, f"show tblproperties {name}").rows)
    if properties.get("delta.deletedFileRetentionDuration") != retention:
        _sql(ctx, f"alter table {name} set tblproperties ('delta.deletedFileRetentionDuration' = '{retention}')")
    _sql(ctx, f"optimize {name}")
    _sql(ctx, f"vacuum {name}")
    return True


def _vacuum_due(ctx: Context, table: str) -> bool:
    """True when none of the table's last pipeline.ops_vacuum_commits commits was a VACUUM."""
    every = ctx.config.pipeline.ops_vacuum_commits
    history = _sql(ctx, f"describe history {table} limit {every}")
    operations = [row[history.columns.index("operation")] for row in history.rows]
    return len(operations) >= every and "VACUUM END" not in operations


def _maintain_ops(ctx: Context, tables: list[str], *, check_properties: bool = True) -> list[str]:
    """Keep the ops tables, which every run appends to, from piling up files: auto compaction on
    (set at creation; added here to tables made before, unless ``check_properties`` is off), and
    a VACUUM every pipeline.ops_vacuum_commits commits. The tables vacuumed."""
    from lakehouse.audit import AUTO_COMPACT

    vacuumed = []
    for table in tables:
        if check_properties and dict(_sql(ctx, f"show tblproperties {table}").rows).get(AUTO_COMPACT) != "true":
            _sql(ctx, f"alter table {table} set tblproperties ('{AUTO_COMPACT}' = 'true')")
        if _vacuum_due(ctx, table):
            _sql(ctx, f"vacuum {table}")
            vacuumed.append(table)
    return vacuumed


def step_maintain(ctx: Context, result: StepResult) -> None:
    from lakehouse.audit import OPS_SCHEMA, RUNS_TABLE

    if not ctx.changed and not ctx.options.no_skip:
        # Only the run log changed; it alone may be due for a VACUUM.
        vacuumed = _maintain_ops(ctx, [RUNS_TABLE], check_properties=False)
        result.status = "skipped"
        result.detail = "nothing changed" + (f"; vacuumed {', '.join(vacuumed)}" if vacuumed else "")
        return
    maintained, unchanged = 0, 0
    phases = profiling.Phases()
    for schema in ctx.config.pipeline.maintain_schemas:
        for table in _delta_tables(ctx, schema):
            name = f"{schema}.{table}"
            ctx.event("output", "maintain", f"  maintain {name}")
            with phases.timed(name):
                changed = _maintain_table(ctx, name)
            maintained += changed
            unchanged += not changed
    with phases.timed(OPS_SCHEMA):
        vacuumed = _maintain_ops(ctx, [f"{OPS_SCHEMA}.{table}" for table in _delta_tables(ctx, OPS_SCHEMA)])
    result.profile = {"phases": phases.seconds}
    result.detail = (
        f"optimized and vacuumed {maintained} tables (retain {ctx.config.pipeline.vacuum_retain_hours} h)"
        + (f", {unchanged} unchanged" if unchanged else "")
        + (f"; vacuumed {', '.join(vacuumed)}" if vacuumed else "")
    )


STEP_FUNCTIONS: dict[str, Callable[[Context, StepResult], None]] = {
    "up": step_up,
    "sources": step_sources,
    "extract": step_extract,
    "validate": step_validate,
    "transform": step_transform,
    "maintain": step_maintain,
}


def _ticker(ctx: Context, result: StepResult, stop: threading.Event) -> None:
    """On a terminal, a live line with the elapsed time of the running step."""
    started = time.monotonic()
    while not stop.wait(TICK_SECONDS):
        elapsed = int(time.monotonic() - started)
        print(f"\r  [{result.name} {elapsed // 60}:{elapsed % 60:02d}]", end="", file=ctx.out, flush=True)
    print("\r" + " " * 40 + "\r", end="", file=ctx.out, flush=True)


def run_step(ctx: Context, result: StepResult) -> None:
    """Run one step with bounded retries for transient failures."""
    result.started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    ctx.event("step_start", result.name, f"==> {result.name}")
    show_ticker = ctx.options.log_format == "text" and not ctx.options.quiet and ctx.out.isatty()
    try:
        retries = ctx.config.pipeline.step_retries
        for attempt in range(1, retries + 2):
            result.attempts = attempt
            stop = threading.Event()
            ticker = threading.Thread(target=_ticker, args=(ctx, result, stop), daemon=True)
            if show_ticker:
                ticker.start()
            try:
                STEP_FUNCTIONS[result.name](ctx, result)
                if result.status == "pending":
                    result.status = "succeeded"
                return
            except TransientError as exc:
                if attempt > retries:
                    raise PipelineError(f"{exc} (after {attempt} attempts)") from None
                delay = ctx.config.pipeline.retry_backoff_seconds * 2 ** (attempt - 1)
                ctx.event("retry", result.name, f"  {exc}; retrying in {delay:.0f} s", delay=delay)
                time.sleep(delay)
            finally:
                stop.set()
                if show_ticker:
                    ticker.join()
    finally:
        result.seconds = time.monotonic() - started
        result.ended_at = dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------ summary and audit


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def summary_text(ctx: Context, results: list[StepResult]) -> str:
    rows = [("step", "status", "seconds", "read", "written", "quarantined", "detail")]
    for r in results:
        rows.append(
            (
                r.name,
                r.status,
                f"{r.seconds:.1f}",
                _fmt(r.rows_read),
                _fmt(r.rows_written),
                _fmt(r.rows_quarantined),
                r.detail,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    home = ctx.config.home
    return "\n".join(
        [
            f"run {ctx.run_id}",
            table,
            "",
            f"JDBC (BI tools): {ctx.config.thrift.jdbc_url}/gold",
            f"Data Docs:       {home / 'reports' / 'data_docs' / 'index.html'}",
            f"dbt docs:        {home / 'dbt' / 'target' / 'index.html'}",
            'next: lakehouse sql "show tables in gold"  |  lakehouse simulate --days 1 && lakehouse pipeline',
        ]
    )


def record_pipeline_steps(ctx: Context, results: list[StepResult], started_at: dt.datetime, status: str) -> None:
    """Append one row per step (and one for the whole run) in one commit through the Thrift server.

    Step rows have no source table; extract and validate also wrote one row per table.
    """
    records = [
        StepRecord(
            ctx.run_id,
            r.name,
            started_at=r.started_at,
            ended_at=r.ended_at,
            rows_read=r.rows_read,
            rows_quarantined=r.rows_quarantined,
            rows_inserted=r.rows_written,
            status=r.status,
            error_message=(r.detail or None) if r.status == "failed" else None,
            profile=r.profile,
        )
        for r in results
        if r.started_at is not None
    ]
    whole = {"spark_applications": ctx.spark_applications}
    records.append(StepRecord(ctx.run_id, "pipeline", started_at=started_at, profile=whole).finish(status))
    try:
        record_over_thrift(ctx.config, records)
    except QueryError as exc:
        ctx.event("error", "summary", f"could not record the run in {RUNS_TABLE}: {exc}")


def selected_steps(options: Options) -> list[str]:
    if options.only:
        if options.only not in STEP_FUNCTIONS:
            raise ValueError(f"--only: unknown step {options.only!r}; steps are {', '.join(STEP_FUNCTIONS)}")
        return [options.only]
    start = options.from_step or STEPS[0]
    if start not in STEP_FUNCTIONS:
        raise ValueError(f"--from: unknown step {start!r}; steps are {', '.join(STEP_FUNCTIONS)}")
    return [s for s in STEP_FUNCTIONS if STEPS.index(s) >= STEPS.index(start)]


def _run(ctx: Context, steps: list[str], locks: contextlib.ExitStack) -> int:
    started_at = dt.datetime.now(dt.UTC)
    results = [StepResult(name) for name in steps]
    status = "succeeded"
    locked = False

    def notify(message: str) -> None:
        ctx.event("output", "lock", f"  {message}")

    for result in results:
        try:
            if result.name != "up" and not locked:
                # Every step after `up` writes: hold the lakehouse's shared writer lock (it
                # needs PostgreSQL, which `up` starts). Refused: this step fails, naming the holder.
                locks.enter_context(shared_lock(ctx.config, "pipeline", wait=ctx.options.wait, notify=notify))
                locked = True
            run_step(ctx, result)
        except Exception as exc:
            result.status = "failed"
            result.detail = (str(exc).splitlines() or [type(exc).__name__])[0]
            ctx.event("error", result.name, f"lakehouse pipeline: {result.name} failed: {result.detail}")
            status = "failed"
            break
        ctx.event(
            "step_end",
            result.name,
            f"    {result.name}: {result.status} in {result.seconds:.1f} s",
            **{k: v for k, v in asdict(result).items() if k != "name"},
        )
    for result in results:
        if result.status == "pending":
            result.status = "skipped"
            result.detail = "not run: an earlier step failed"
            result.started_at = result.ended_at = dt.datetime.now(dt.UTC)
    services_up = "up" not in steps or results[0].status == "succeeded"
    if services_up:
        record_pipeline_steps(ctx, results, started_at, status)
    ctx.event(
        "summary", "summary", summary_text(ctx, results), status=status, spark_applications=ctx.spark_applications
    )
    if ctx.options.profile and services_up:
        _print_profile(ctx)
    return 0 if status == "succeeded" else 1


def _print_profile(ctx: Context) -> None:
    """Where this run's time went, as recorded (the per-table rows come from the Spark jobs)."""
    try:
        rows = profiling.read_profile(ctx.config, ctx.run_id)
    except QueryError as exc:
        ctx.event("error", "summary", f"could not read the run's profile: {exc}")
        return
    ctx.event("profile", "summary", profiling.format_profile(ctx.run_id, rows), rows=rows)


def run_pipeline(config: Config, options: Options, out: TextIO = sys.stdout) -> int:
    """Run the selected steps in order under the run lock; 0 only when every step succeeded."""
    steps = selected_steps(options)
    ctx = Context(config, options, new_run_id(), out)
    try:
        with (
            run_lock(config, wait=options.wait, notify=lambda m: ctx.event("output", "lock", f"  {m}")),
            contextlib.ExitStack() as locks,
        ):
            return _run(ctx, steps, locks)
    except LockedError as exc:
        ctx.event("error", "lock", f"lakehouse pipeline: error: {exc}")
        return 1
