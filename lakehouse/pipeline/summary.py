"""The end of a run: its rows in ``ops.pipeline_runs`` (one commit), the summary, the profile."""

from __future__ import annotations

import datetime as dt

from lakehouse import profiling
from lakehouse.audit import RUNS_TABLE, StepRecord, record_over_thrift
from lakehouse.dashboards import superset
from lakehouse.pipeline.context import Context, StepResult
from lakehouse.serving.sql_client import QueryError


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
    dashboards = superset.running_url(ctx.config)
    return "\n".join(
        [
            f"run {ctx.run_id}",
            table,
            "",
            f"JDBC (BI tools): {ctx.config.thrift.jdbc_url}/gold",
            *([f"Dashboards:      {dashboards}/dashboard/list/ (Superset)"] if dashboards else []),
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


def print_profile(ctx: Context) -> None:
    """Where this run's time went, as recorded (the per-table rows come from the Spark jobs)."""
    try:
        rows = profiling.read_profile(ctx.config, ctx.run_id)
    except QueryError as exc:
        ctx.event("error", "summary", f"could not read the run's profile: {exc}")
        return
    ctx.event("profile", "summary", profiling.format_profile(ctx.run_id, rows), rows=rows)
