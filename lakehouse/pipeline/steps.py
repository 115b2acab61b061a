"""The steps of a run, each ``step_<name>(ctx, result)``: what it does, or why it is skipped."""

from __future__ import annotations

from lakehouse.audit import RUNS_TABLE
from lakehouse.config import Config
from lakehouse.pipeline.context import Context, GateFailed, Options, PipelineError, StepResult, TransientError
from lakehouse.pipeline.decisions import SourcesDown, gate_decision, still_failed_message, tables_to_extract
from lakehouse.pipeline.jobs import StepPart, check_exit, spark_job

# Exit codes of jobs/validate_bronze.py.
GATE_FAILED = 1
GATE_COULD_NOT_RUN = 2
GATE_FAILED_MESSAGE = "quality gate failed: transform skipped, silver and gold keep the last good data"


def audit_counts(ctx: Context, step: str) -> tuple[int | None, int | None, int | None]:
    """Rows read, written (inserted+updated) and quarantined for this run's step, from the audit."""
    result = ctx.sql(
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


def step_extract(ctx: Context, result: StepResult) -> None:
    args = ["--run-id", ctx.run_id] + (["--full-refresh"] if ctx.options.full_refresh else [])
    if not (ctx.options.no_skip or ctx.options.full_refresh):
        try:
            tables = tables_to_extract(ctx.config, None, lambda m: ctx.event("output", "extract", f"  {m}"))
        except SourcesDown as exc:
            for line in exc.lines:
                ctx.event("output", "extract", f"  extract: error: {line}")
            raise TransientError(f"extract failed: {exc}") from None  # retried: a source may come back
        if tables == []:
            from lakehouse.bronze.contracts import CONTRACTS

            ctx.changed = False
            result.status = "skipped"
            result.detail = f"nothing new in the {len(CONTRACTS)} source tables"
            return
        for table in tables or []:
            args += ["--table", table]
    # With validate next in this run, one Spark application does both (lakehouse/pipeline/ingest.py).
    ingest = "validate" in ctx.steps
    run = spark_job(
        ctx,
        result,
        "ingest.py" if ingest else "extract.py",
        args + (["--gate", "always"] if ingest and ctx.options.no_skip else []),
    )
    gate = run.later.get("validate")
    if gate is None:  # the extract failed (the gate's part never began), or it ran alone
        check_exit(run.code, run.output, "extract failed")
    else:
        ctx.gate_part = (run.code, gate)
        result.span = (result.started_at.timestamp() if result.started_at else gate.began_at, gate.began_at)
    result.rows_read, result.rows_written, result.rows_quarantined = audit_counts(ctx, "extract")
    ctx.changed = bool(result.rows_written) or ctx.options.full_refresh
    result.detail = "" if ctx.changed else "no new or changed rows"


def step_validate(ctx: Context, result: StepResult) -> None:
    if ctx.gate_part is not None:
        code, part = ctx.gate_part
        ctx.gate_part = None  # taken: a retry of this step runs the gate on its own
        _gate_part(ctx, result, code, part)
        return
    if not ctx.options.no_skip:
        decision = gate_decision(ctx.config)
        if decision.failed_run is not None:
            raise GateFailed(still_failed_message(decision.failed_run))
        if decision.reason is None:
            for warning in decision.warnings:
                ctx.event("output", "validate", f"  warning: {warning}")
            result.status = "skipped"
            result.detail = _nothing_to_validate(decision.warnings)
            return
        ctx.event("output", "validate", f"  the gate runs: {decision.reason}")
    run = spark_job(ctx, result, "validate_bronze.py", ["--run-id", ctx.run_id])
    if run.code == GATE_FAILED:
        raise GateFailed(GATE_FAILED_MESSAGE)
    check_exit(run.code, run.output, "validate could not run")
    result.rows_read = audit_counts(ctx, "validate")[0]


def _gate_part(ctx: Context, result: StepResult, code: int, part: StepPart) -> None:
    """The validate step done by the extract's Spark application: its outcome, time and profile."""
    from lakehouse.pipeline.ingest import GATE_DETAIL_KEY, GATE_KEY

    outcome = part.announced.pop(GATE_KEY, None)
    detail = str(part.announced.pop(GATE_DETAIL_KEY, ""))
    warnings = part.announced.pop("warnings", None) or []
    result.span = (part.began_at, part.ended_at)
    result.profile = {
        "spark_applications": 0,
        "in_application_of": "extract",
        "application_s": round(part.ended_at - part.began_at, 2),
        **part.announced,
    }
    if outcome == "still_failed":
        raise GateFailed(detail)
    if outcome == "failed":
        raise GateFailed(GATE_FAILED_MESSAGE)
    if outcome == "skipped":
        result.status = "skipped"
        result.detail = _nothing_to_validate(warnings)
        return
    if outcome != "passed":
        check_exit(code or 1, part.output, "validate could not run")
    result.rows_read = audit_counts(ctx, "validate")[0]


def _nothing_to_validate(warnings: list[str]) -> str:
    from lakehouse.bronze.contracts import CONTRACTS

    return f"no unvalidated batch in the {len(CONTRACTS)} bronze tables" + (
        f"; {len(warnings)} warning(s)" if warnings else ""
    )


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
