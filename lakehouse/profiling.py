"""What a run spent its time on: JVM starts, Spark jobs, Delta commits, dbt nodes.

A profile is a small JSON object kept in the ``profile`` column of ``ops.pipeline_runs``:

- a per-table row of ``extract`` and ``validate`` (written by the Spark job): the table's Spark
  jobs (``spark_jobs``, ``spark_job_s``: summed job durations, so parallel jobs add up),
  ``delta_commits`` and the seconds of its phases (``phases``);
- the step row of a Spark step (written by the pipeline): ``spark_applications``,
  ``jvm_start_s`` (from ``spark-submit`` to a ready SparkSession: the JVM, Python, Delta and the
  Hive metastore client) and ``application_s``, plus what the job reported for the whole
  application (its shared commits, the Data Docs);
- the ``transform`` row: each dbt node's time from ``run_results.json``, grouped by resource
  type (models, snapshots, tests, unit tests; thread time, so nodes in parallel add up), and
  the seconds of the steps around dbt (gate check, plan, publish);
- the run's ``pipeline`` row: ``spark_applications`` started in the run.

`lakehouse pipeline --profile` prints the run's profile at its end, `lakehouse profile RUN_ID`
prints any recorded run's, and `lakehouse bench` keeps it in its JSON.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# A Spark job prints lines starting with this, each a JSON object for the step's profile.
PROFILE_MARK = "lakehouse-profile:"
SESSION_READY_KEY = "session_ready_at"
# A job that runs two steps of the pipeline (jobs/ingest.py: extract, then validate) says where
# the second begins: {"step_begins": "validate", "at": epoch seconds}.
STEP_BEGINS_KEY = "step_begins"
JOB_GROUP_PROPERTY = "spark.jobGroup.id"
SLOWEST_NODES = 10
# dbt resource types in the order a profile lists them.
DBT_GROUPS = ("seed", "model", "snapshot", "test", "unit_test")


@dataclass
class SparkWork:
    """The Spark jobs that ran under one job group: how many, and their summed seconds."""

    jobs: int = 0
    seconds: float = 0.0
    tasks: int = 0

    def as_profile(self) -> dict[str, Any]:
        return {"spark_jobs": self.jobs, "spark_job_s": round(self.seconds, 2), "spark_tasks": self.tasks}


def _completed_jobs(spark: SparkSession, group: str) -> SparkWork:
    """Count and time the jobs of a job group from the application's status store."""
    context = spark.sparkContext
    store = context._jsc.sc().statusStore()  # the store behind the Spark UI; there with the UI off too
    work = SparkWork()
    for job_id in context.statusTracker().getJobIdsForGroup(group):
        data = store.job(job_id)
        submitted, completed = data.submissionTime(), data.completionTime()
        work.jobs += 1
        work.tasks += data.numTasks()
        if submitted.isDefined() and completed.isDefined():
            work.seconds += (completed.get().getTime() - submitted.get().getTime()) / 1000
    return work


@contextlib.contextmanager
def spark_jobs(spark: SparkSession, group: str) -> Iterator[SparkWork]:
    """Tag the Spark jobs this thread starts in the block; the yielded object is filled at exit.

    The job group is a thread-local property (PySpark pins each Python thread to a JVM thread),
    so tables extracted side by side in threads are counted apart.
    """
    context = spark.sparkContext
    previous = context.getLocalProperty(JOB_GROUP_PROPERTY)
    context.setJobGroup(group, group)
    work = SparkWork()
    try:
        yield work
    finally:
        context.setLocalProperty(JOB_GROUP_PROPERTY, previous)  # type: ignore[arg-type]
        found = _completed_jobs(spark, group)
        work.jobs, work.seconds, work.tasks = found.jobs, found.seconds, found.tasks


@dataclass
class Phases:
    """Seconds per named phase of a piece of work, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - started, 2)


EXECUTORS_KEY = "executors"
REST_TIMEOUT_SECONDS = 10


def rest_executors(ui_url: str, app_id: str | None = None) -> list[dict[str, Any]] | None:
    """Every executor of an application, from its REST API (``/allexecutors``: removed ones too):
    id, host:port, cores, tasks run (and failed), task seconds, added and removed at. ``app_id``
    None: the one application that UI serves (a Thrift server's). None when it does not answer."""
    import urllib.error
    import urllib.request

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{ui_url.rstrip('/')}/api/v1/{path}", timeout=REST_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())

    try:
        app_id = app_id or get("applications")[0]["id"]
        executors = get(f"applications/{app_id}/allexecutors")
    except (urllib.error.URLError, OSError, ValueError, IndexError, KeyError):
        return None
    return [
        {
            "id": e["id"],
            "host_port": e.get("hostPort"),
            "cores": e.get("totalCores"),
            "tasks": e.get("totalTasks"),
            "failed_tasks": e.get("failedTasks"),
            "task_s": round(e.get("totalDuration", 0) / 1000, 1),
            "added": e.get("addTime"),
            "removed": e.get("removeTime"),
        }
        for e in executors
    ]


def executor_summary(spark: SparkSession) -> list[dict[str, Any]] | None:
    """This application's executors (:func:`rest_executors`); None in local mode or when the UI
    (and with it the REST API) is off."""
    context = spark.sparkContext
    if context.master.startswith("local") or not context.uiWebUrl:
        return None
    return rest_executors(context.uiWebUrl, context.applicationId)


def announce(**values: Any) -> None:
    """Print one profile line for the pipeline that started this job (a no-op for a person)."""
    print(f"{PROFILE_MARK} {json.dumps(values, default=str)}", flush=True)


# Peak resident memory (VmHWM) of a JVM so far, in MiB: the application's (its driver; in local
# mode its executors run in it too) and the Thrift server's (dbt, maintain and BI queries).
JVM_PEAK_KEY = "jvm_peak_rss_mb"
THRIFT_PEAK_KEY = "thrift_peak_rss_mb"


def peak_rss_mb(pid: int | None) -> float | None:
    """A process's peak resident memory so far (``VmHWM`` of /proc/<pid>/status) in MiB; None
    where that is unknown (no such process, not Linux)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def announce_jvm_peak(spark: SparkSession) -> None:
    """Announce this application's JVM peak resident memory so far (for the step it is in)."""
    try:
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
    except Exception:  # no JVM to ask (stopped, or not a py4j gateway): nothing to announce
        return
    peak = peak_rss_mb(pid)
    if peak is not None:
        announce(**{JVM_PEAK_KEY: peak})


def announce_session_ready() -> None:
    """Say when the SparkSession became ready: the pipeline derives the JVM start from it."""
    announce(**{SESSION_READY_KEY: round(time.time(), 3)})


def announce_step_begins(step: str) -> None:
    """Say that the work of ``step`` begins here: its output, time and profile are its own."""
    announce(**{STEP_BEGINS_KEY: step, "at": round(time.time(), 3)})


def parse_line(line: str) -> dict[str, Any] | None:
    """The profile values of one output line of a job, or None for any other line."""
    if not line.startswith(PROFILE_MARK):
        return None
    try:
        values = json.loads(line[len(PROFILE_MARK) :])
    except json.JSONDecodeError:
        return None
    return values if isinstance(values, dict) else None


def application_profile(announced: dict[str, Any], submitted_at: float, ended_at: float) -> dict[str, Any]:
    """The step row's profile of one spark-submit: the JVM start, the whole application, and
    what the job announced (``submitted_at``, ``ended_at``: wall-clock epoch seconds)."""
    profile: dict[str, Any] = {"spark_applications": 1, "application_s": round(ended_at - submitted_at, 2)}
    ready = announced.get(SESSION_READY_KEY)
    if isinstance(ready, int | float):
        profile["jvm_start_s"] = round(ready - submitted_at, 2)
    profile.update({k: v for k, v in announced.items() if k != SESSION_READY_KEY})
    return profile


def dbt_profile(run_results: dict[str, Any]) -> dict[str, Any]:
    """Each node's seconds of one dbt invocation, grouped by resource type, and the slowest."""
    groups: dict[str, dict[str, Any]] = {}
    nodes: dict[str, float] = {}
    for result in run_results.get("results", []):
        unique_id = str(result.get("unique_id", ""))
        kind = unique_id.split(".", 1)[0] or "other"
        seconds = float(result.get("execution_time") or 0.0)
        group = groups.setdefault(kind, {"nodes": 0, "seconds": 0.0, "failed": 0})
        group["nodes"] += 1
        group["seconds"] = round(group["seconds"] + seconds, 2)
        group["failed"] += result.get("status") in ("error", "fail", "runtime error")
        nodes[unique_id] = round(seconds, 2)
    ordered = {kind: groups[kind] for kind in (*DBT_GROUPS, *sorted(set(groups) - set(DBT_GROUPS))) if kind in groups}
    slowest = sorted(nodes.items(), key=lambda item: item[1], reverse=True)[:SLOWEST_NODES]
    return {
        "dbt_elapsed_s": round(float(run_results.get("elapsed_time") or 0.0), 2),
        "dbt_groups": ordered,
        "dbt_slowest": dict(slowest),
        "dbt_nodes": nodes,
    }


# ------------------------------------------------------------------ reading and printing


def profile_sql(runs_table: str, run_id: str) -> str:
    """The rows of one run in ops.pipeline_runs, in the order they ran."""
    from lakehouse.serving.sql_client import sql_literal

    return (
        "select step, source_table, status, "
        "(unix_micros(ended_at) - unix_micros(started_at)) / 1000000 as seconds, profile "
        f"from {runs_table} where run_id = {sql_literal(run_id)} "
        "order by case when step = 'pipeline' then 1 else 0 end, started_at, source_table"
    )


def rows_as_dicts(rows: list[tuple]) -> list[dict[str, Any]]:
    """The rows of :func:`profile_sql` as dicts, each profile parsed (an unreadable one is empty)."""
    parsed = []
    for step, table, status, seconds, profile in rows:
        try:
            values = json.loads(profile) if profile else {}
        except json.JSONDecodeError:
            values = {}
        parsed.append({"step": step, "table": table, "status": status, "seconds": seconds, "profile": values})
    return parsed


def _spark_cells(profile: dict[str, Any]) -> tuple[str, str, str, str]:
    def cell(key: str, digits: int = 0) -> str:
        value = profile.get(key)
        if value is None:
            return "-"
        return f"{value:.{digits}f}" if digits else f"{value}"

    return cell("jvm_start_s", 1), cell("spark_jobs"), cell("spark_job_s", 1), cell("delta_commits")


def _details(profile: dict[str, Any]) -> str:
    parts = [f"{name} {seconds:.1f} s" for name, seconds in profile.get("phases", {}).items()]
    for kind, group in profile.get("dbt_groups", {}).items():
        parts.append(f"{kind} {group['nodes']} in {group['seconds']:.1f} s")
    if "spark_applications" in profile and "jvm_start_s" not in profile:
        parts.append(f"{profile['spark_applications']} Spark application(s)")
    return ", ".join(parts)


def format_profile(run_id: str, rows: list[dict[str, Any]]) -> str:
    """A table of where one run's time went, then the slowest dbt nodes."""
    header = ("step", "table", "status", "seconds", "jvm start", "spark jobs", "job s", "commits", "where it went")
    lines = [header]
    for row in rows:
        seconds = row["seconds"]
        lines.append(
            (
                row["step"],
                row["table"] or "",
                row["status"],
                "-" if seconds is None else f"{seconds:.0f}",
                *_spark_cells(row["profile"]),
                _details(row["profile"]),
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = [f"profile of run {run_id} (job and dbt seconds are summed over parallel work)"]
    text += ["  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    for row in rows:
        slowest = row["profile"].get("dbt_slowest")
        if slowest:
            text.append(f"slowest dbt nodes of {row['step']}:")
            text += [f"  {seconds:>7.1f} s  {node}" for node, seconds in slowest.items()]
    return "\n".join(text)


def read_profile(config: Any, run_id: str) -> list[dict[str, Any]]:
    """The profile rows of one recorded run, over the Thrift server."""
    from lakehouse.audit import RUNS_TABLE
    from lakehouse.serving.sql_client import run_query

    return rows_as_dicts(run_query(config, profile_sql(RUNS_TABLE, run_id)).rows)
