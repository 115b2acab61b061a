"""When the lakehouse runs under Dagster, and what happens when a run fails.

    lakehouse_daily            a schedule of lakehouse_pipeline (``orchestrator.schedule_cron`` in
                               ``orchestrator.timezone``), shipped stopped
    lakehouse_sources_changed  a sensor that asks the pipeline's own decision, without Spark,
                               whether a source table changed since its extract or bronze holds
                               rows no passed gate covers; shipped stopped
    alert_on_failure           a failure hook on both jobs: the failure appended to
                               ``<home>/reports/alerts.jsonl`` and ``orchestrator.alert_command`` run

A run that another run of the lakehouse is still running, queued or starting is not requested
again: the writer lock would only make it wait.
"""

import contextlib
import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from lakehouse import errors
from lakehouse.config import Config, load_config

ALERTS_FILE = "alerts.jsonl"
ALERT_TIMEOUT_SECONDS = 60
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def daily_schedule(job: UnresolvedAssetJobDefinition, config: Config) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="lakehouse_daily",
        job=job,
        cron_schedule=config.orchestrator.schedule_cron,
        execution_timezone=config.orchestrator.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        tags={"lakehouse/trigger": "schedule"},
        description="The daily lakehouse_pipeline (orchestrator.schedule_cron, orchestrator.timezone).",
    )


def work_to_do(config: Config) -> tuple[list[str] | None, str | None]:
    """The pipeline's own decisions, without Spark: the source tables that changed since their
    extract (None: cannot tell, so the extract would run), and why the gate must run (None: a
    passed gate covers all of bronze)."""
    from lakehouse.pipeline.decisions import tables_to_extract, unvalidated

    tables = tables_to_extract(config, None, lambda _line: None)
    return tables, unvalidated(config)


def sources_sensor(job: UnresolvedAssetJobDefinition, config: Config) -> dg.SensorDefinition:
    @dg.sensor(
        name="lakehouse_sources_changed",
        job=job,
        minimum_interval_seconds=config.orchestrator.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Runs lakehouse_pipeline when a source table changed or bronze holds unvalidated rows.",
    )
    def lakehouse_sources_changed(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        active = context.instance.get_runs(dg.RunsFilter(job_name=job.name, statuses=ACTIVE), limit=1)
        if active:
            return dg.SkipReason(f"run {active[0].run_id} of {job.name} has not finished")
        current = load_config()
        try:
            tables, pending = work_to_do(current)
        except Exception as exc:  # the services are down: say so, ask again next time
            return dg.SkipReason(f"cannot ask the lakehouse: {errors.one_line(exc, current.secret_values)}")
        if tables == [] and pending is None:
            return dg.SkipReason("nothing new in the source tables, and a passed gate covers bronze")
        reason = f"changed: {', '.join(tables)}" if tables else "the sources may have changed" if tables is None else ""
        reason = "; ".join(r for r in (reason, f"unvalidated: {pending}" if pending else "") if r)
        request = dg.RunRequest(tags={"lakehouse/trigger": "sensor", "lakehouse/reason": reason[:200]})
        return dg.SensorResult(run_requests=[request])

    return lakehouse_sources_changed


def record_failure(config: Config, job: str, run_id: str, step: str, message: str) -> Path:
    """Append the failure to <home>/reports/alerts.jsonl; run orchestrator.alert_command."""
    path = config.home / "reports" / ALERTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"at": dt.datetime.now(dt.UTC).isoformat(), "job": job, "run_id": run_id, "step": step, "message": message}
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
    command = config.orchestrator.alert_command
    if command:
        environment = {
            **os.environ,
            "LAKEHOUSE_ALERT_JOB": job,
            "LAKEHOUSE_ALERT_RUN_ID": run_id,
            "LAKEHOUSE_ALERT_STEP": step,
            "LAKEHOUSE_ALERT_MESSAGE": message,
        }
        # An alert that hangs must not hold the run: the line above is written either way.
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(command, shell=True, env=environment, timeout=ALERT_TIMEOUT_SECONDS, check=False)
    return path


@dg.failure_hook(name="alert_on_failure")
def alert_on_failure(context: dg.HookContext) -> None:
    config = load_config()
    exc = context.op_exception
    message = errors.one_line(exc, config.secret_values) if exc is not None else "failed"
    lines = str(exc).strip().splitlines() if exc is not None else []
    if len(lines) > 1 and lines[0].rstrip().endswith(":"):  # "1 blocking asset check failed ...:\n<which>"
        message = f"{message} {' '.join(line.strip() for line in lines[1:4])}"
    path = record_failure(config, context.job_name, context.run_id, context.op.name, message)
    context.log.error(f"lakehouse: {context.op.name} failed; recorded in {path}")
