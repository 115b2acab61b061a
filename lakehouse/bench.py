"""`lakehouse bench`: measure the pipeline at a given scale (medium by default), in one run.

The benchmark uses its own state directory (``<home>/bench``) and ports, so it never touches
the data of a running `make pipeline`. In order it measures:

1. generation and loading rows/second (``lakehouse.sources.bench``);
2. the full pipeline from empty sources, time per step;
3. the raw source read rates on the same data, as baselines for the extract:
   PostgreSQL ``COPY viewing_sessions TO STDOUT`` and a plain pymongo cursor over ``content``;
4. ``simulate --days 1`` and the incremental pipeline, time per step;
5. the pipeline once more with nothing new (what a scheduler polling every few minutes pays),
   with the number of Spark applications it started.

At the large scale only 1-3 run (:data:`FULL_ONLY_SCALES`): the question there is whether the
full run completes on the machine, and in what memory. Each run's profile
(lakehouse/profiling.py), each step's peak resident memory (VmHWM of the Spark application's
JVM, where its executors run too in local mode, and of the Thrift server's) and the machine's
load average are kept too.

Results are written as JSON to ``<home>/reports/bench-<timestamp>.json`` and printed as a
table with the ratios the issues ask about (extract vs COPY, validate vs extract, incremental
vs full). Nothing here is a test: it reports what it measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lakehouse import processes, profiling
from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.errors import LakehouseError
from lakehouse.serving.sql_client import delta_versions

PORT_OFFSET = 1000
# Where a run with nothing new must not write: bronze and the tables silver and gold publish.
TABLE_SCHEMAS = ("bronze", "silver_build", "gold_build")
# Nothing in the bench waits forever: a service command, query or simulated day, and a whole
# pipeline run (the large scale takes hours on two cores).
COMMAND_TIMEOUT_SECONDS = 1800
PIPELINE_TIMEOUT_SECONDS = 6 * 3600
# Scales the bench runs the full pipeline of only (no simulated day, no run with nothing new).
FULL_ONLY_SCALES = ("large",)
NULL_SINK_CHUNK = 1 << 20


class _NullSink:
    """A file-like sink that only counts bytes (COPY TO STDOUT target)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: str | bytes) -> int:
        self.bytes += len(data)
        return len(data)


def bench_environment(config: Config, name: str = "bench", port_offset: int = PORT_OFFSET) -> dict[str, str]:
    """An isolated stack: its state in <home>/<name>, its servers on the default ports + port_offset."""
    env = dict(os.environ)
    env.update(
        {
            "LAKEHOUSE_HOME": str(config.home / name),
            "LAKEHOUSE_CACHE_DIR": str(config.cache_dir),
            "LAKEHOUSE_POSTGRES_PORT": str(config.postgres.port + port_offset),
            "LAKEHOUSE_MONGODB_PORT": str(config.mongodb.port + port_offset),
            "LAKEHOUSE_THRIFT_PORT": str(config.thrift.port + port_offset),
        }
    )
    for name in ("LAKEHOUSE_POSTGRES_URL", "LAKEHOUSE_MONGODB_URI", "LAKEHOUSE_POSTGRES_PASSWORD"):
        env.pop(name, None)
    return env


class BenchError(LakehouseError):
    """A measured run failed; the message names the step and where its full output is."""


def stack_cli(env: dict[str, str], *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
    """`lakehouse ARGS` in the bench's stack, its output (stdout and stderr) in ``stdout``."""
    try:
        return processes.run(
            [sys.executable, "-m", "lakehouse.cli", *args],
            timeout=timeout,
            what=f"bench: `lakehouse {' '.join(args)}`",
            setting="lakehouse/bench.py timeouts",
            env=env,
            cwd=PROJECT_ROOT,
        )
    except processes.CommandTimeout as exc:
        raise BenchError(str(exc)) from None


def timed_pipeline(env: dict[str, str], log: Path, *args: str) -> dict[str, Any]:
    """Run the pipeline with JSON events; return wall time, run id and per-step results.

    The whole output is kept in `log`; a failed run raises with its failing step.
    """
    started = time.monotonic()
    result = stack_cli(env, "pipeline", "--log-format", "json", *args, timeout=PIPELINE_TIMEOUT_SECONDS)
    seconds = time.monotonic() - started
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout)
    steps: dict[str, Any] = {}
    run_id = None
    errors = []
    for line in result.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        run_id = event.get("run_id", run_id)
        if event.get("event") == "step_end":
            steps[event["step"]] = {
                k: event.get(k) for k in ("seconds", "rows_read", "rows_written", "rows_quarantined", "status")
            }
        elif event.get("event") == "error":
            errors.append(event.get("message", ""))
    if result.returncode != 0:
        reason = errors[0] if errors else (result.stdout.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"bench: the pipeline failed ({reason}); its output is in {log}")
    return {"exit_code": result.returncode, "seconds": seconds, "run_id": run_id, "steps": steps}


def _profile(config: Config, run_id: str) -> list[dict[str, Any]]:
    """The run's recorded profile (lakehouse/profiling.py), row by row, for the JSON."""
    from lakehouse.profiling import read_profile

    return read_profile(config, run_id)


def _extract_rates(config: Config, run_id: str) -> dict[str, Any]:
    """Per-table extract rows and seconds of one pipeline run, from the audit table."""
    from lakehouse.serving.sql_client import run_query

    rows = run_query(
        config,
        "select source_table, rows_read, unix_timestamp(ended_at) - unix_timestamp(started_at) "
        f"from ops.pipeline_runs where run_id = '{run_id}' and step = 'extract' and source_table is not null",
    ).rows
    return {table: {"rows": read, "seconds": seconds} for table, read, seconds in rows}


def copy_baseline(config: Config, table: str = "viewing_sessions") -> dict[str, float]:
    """Rows/second of PostgreSQL's own COPY of the table to a null sink."""
    from lakehouse.services.postgres import connect

    conn = connect(config)
    try:
        with conn.cursor() as cur:
            cur.execute(f"select count(*) from {table}")
            rows = cur.fetchone()[0]
            sink = _NullSink()
            started = time.monotonic()
            cur.copy_expert(f"copy {table} to stdout with (format csv)", sink, size=NULL_SINK_CHUNK)
            seconds = time.monotonic() - started
    finally:
        conn.close()
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds if seconds else 0.0}


def cursor_baseline(config: Config, collection: str = "content") -> dict[str, float]:
    """Documents/second of a plain pymongo cursor over the collection."""
    from lakehouse.services.mongodb import client

    with client(config) as mongo:
        started = time.monotonic()
        count = sum(1 for _ in mongo[config.mongodb.database][collection].find({}, batch_size=2000))
        seconds = time.monotonic() - started
    return {"rows": count, "seconds": seconds, "rows_per_second": count / seconds if seconds else 0.0}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def _fresh_state(env: dict[str, str], home: Path) -> None:
    """Stop what an earlier bench left running and empty its state (its secrets kept): another
    scale's sources, bronze or dbt snapshot would be measured or tested instead."""
    if not home.exists():
        return
    stack_cli(env, "down")
    for child in home.iterdir():
        if child.name != "secrets":
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def run_bench(config: Config, scale: str = "medium", progress=print) -> dict[str, Any]:
    from lakehouse.pipeline import ingest_server
    from lakehouse.sources.bench import bench_sources

    env = bench_environment(config)
    bench_config = load_config(env=env)
    report: dict[str, Any] = {
        "scale": scale,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),  # 1, 5 and 15 minutes: other work on the machine
        # Extract and validate on the warm ingest server (LAKEHOUSE_PIPELINE_INGEST_SERVER=true):
        # the full run starts it, the day and the no-change run find it warm.
        "ingest_server": ingest_server.for_pipeline(bench_config),
    }

    progress(f"bench: starting an isolated stack from an empty state in {bench_config.home}")
    _fresh_state(env, bench_config.home)
    up = stack_cli(env, "up")
    if up.returncode != 0:
        raise BenchError(f"bench: could not start the services: {(up.stdout.strip().splitlines() or ['?'])[-1]}")
    logs = bench_config.home / "reports"
    try:
        progress(f"bench: generating and loading {scale} (rows/second)")
        report["sources"] = bench_sources(bench_config, scale)
        # The pipeline's own sources get the same files, whatever an earlier bench left there
        # (its `sources` step fills them only when they are empty).
        loaded = stack_cli(env, "load-sources", "--data", report["sources"]["data_dir"], "--replace")
        if loaded.returncode != 0:
            last = (loaded.stdout + loaded.stderr).strip().splitlines() or ["?"]
            raise BenchError(f"bench: could not load the {scale} sources for the pipeline: {last[-1]}")

        progress(f"bench: full pipeline at {scale} scale from empty bronze (output: {logs / 'full.log'})")
        stack_cli(env, "sql", "drop database if exists bronze cascade")
        report["full"] = timed_pipeline(env, logs / "full.log", "--scale", scale, "--full-refresh")
        report["full"]["extract_tables"] = _extract_rates(bench_config, report["full"]["run_id"])
        report["full"]["profile"] = _profile(bench_config, report["full"]["run_id"])
        report["full"]["peak_rss_mb"] = peak_memory(report["full"]["profile"])

        progress("bench: baselines (COPY TO STDOUT, pymongo cursor)")
        report["copy_viewing_sessions"] = copy_baseline(bench_config)
        report["cursor_content"] = cursor_baseline(bench_config)

        if scale in FULL_ONLY_SCALES:
            progress(f"bench: at {scale} scale the full run only (no simulated day, no run with nothing new)")
            return _finish(report)
        progress(f"bench: simulate one day, then the incremental pipeline (output: {logs / 'incremental.log'})")
        started = time.monotonic()
        stack_cli(env, "simulate", "--days", "1")
        report["simulate_seconds"] = time.monotonic() - started
        report["incremental"] = timed_pipeline(env, logs / "incremental.log", "--scale", scale)
        report["incremental"]["extract_tables"] = _extract_rates(bench_config, report["incremental"]["run_id"])
        report["incremental"]["profile"] = _profile(bench_config, report["incremental"]["run_id"])
        report["incremental"]["peak_rss_mb"] = peak_memory(report["incremental"]["profile"])

        progress(f"bench: the pipeline again with nothing new (output: {logs / 'no-change.log'})")
        before = delta_versions(bench_config, TABLE_SCHEMAS)
        report["no_change"] = timed_pipeline(env, logs / "no-change.log", "--scale", scale)
        report["no_change"]["tables_unchanged"] = delta_versions(bench_config, TABLE_SCHEMAS) == before
        report["no_change"]["profile"] = _profile(bench_config, report["no_change"]["run_id"])
        report["no_change"]["spark_applications"] = next(
            (
                row["profile"].get("spark_applications")
                for row in report["no_change"]["profile"]
                if row["step"] == "pipeline"
            ),
            None,
        )
    finally:
        stack_cli(env, "down")
    return _finish(report)


def peak_memory(profile: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each step's peak resident memory in MiB, from its profile row: ``jvm`` (the Spark
    application it ran in, so far) and ``thrift`` (the Thrift server, so far)."""
    peaks: dict[str, dict[str, float]] = {}
    for row in profile:
        if row.get("table") is not None:  # a table's row: the step's row has the peaks
            continue
        values = row.get("profile") or {}
        found = {
            name: values[key]
            for name, key in (("jvm", profiling.JVM_PEAK_KEY), ("thrift", profiling.THRIFT_PEAK_KEY))
            if isinstance(values.get(key), int | float)
        }
        if found:
            peaks[str(row.get("step"))] = found
    return peaks


def _finish(report: dict[str, Any]) -> dict[str, Any]:
    """The ratios of a report's runs, and its end."""
    sessions = report["full"]["extract_tables"].get("viewing_sessions", {})
    content = report["full"]["extract_tables"].get("content", {})
    extract_rate = _ratio(sessions.get("rows"), sessions.get("seconds"))
    mongo_rate = _ratio(content.get("rows"), content.get("seconds"))
    full_steps = report["full"]["steps"]
    report["ratios"] = {
        "extract_vs_copy": _ratio(extract_rate, report["copy_viewing_sessions"]["rows_per_second"]),
        "mongo_extract_vs_cursor": _ratio(mongo_rate, report["cursor_content"]["rows_per_second"]),
        "validate_vs_extract": _ratio(
            full_steps.get("validate", {}).get("seconds"), full_steps.get("extract", {}).get("seconds")
        ),
        "incremental_vs_full": _ratio((report.get("incremental") or {}).get("seconds"), report["full"]["seconds"]),
    }
    report["ended_at"] = dt.datetime.now(dt.UTC).isoformat()
    report["load_average_at_end"] = os.getloadavg()
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [f"benchmark at {report['scale']} scale on {report['cpus']} cores", ""]
    empty: dict[str, Any] = {"steps": {}, "seconds": 0.0}
    runs = [report.get(name) or empty for name in ("full", "incremental", "no_change")]
    header = (
        f"{'step':<10} {'full s':>9} {'incr s':>9} {'no-change s':>12} {'full rows read':>15} {'incr rows read':>15}"
    )
    lines.append(header)
    for step in ("up", "sources", "extract", "validate", "transform", "maintain"):
        full, incr, idle = (run["steps"].get(step, {}) for run in runs)
        lines.append(
            f"{step:<10} {full.get('seconds') or 0:>9.1f} {incr.get('seconds') or 0:>9.1f} "
            f"{idle.get('seconds') or 0:>12.1f} {full.get('rows_read') or 0:>15,} {incr.get('rows_read') or 0:>15,}"
        )
    lines.append(f"{'total':<10} {runs[0]['seconds']:>9.1f} {runs[1]['seconds']:>9.1f} {runs[2]['seconds']:>12.1f}")
    if "no_change" in report:
        lines.append(f"Spark applications started by the no-change run: {runs[2].get('spark_applications')}")
        lines.append(f"Delta tables left unchanged by the no-change run: {runs[2].get('tables_unchanged')}")
    else:
        lines.append(f"at {report['scale']} scale the full run only")
    for name in ("full", "incremental"):
        for step, peaks in (report.get(name) or {}).get("peak_rss_mb", {}).items():
            shown = ", ".join(f"{who} {mb:,.0f} MiB" for who, mb in peaks.items())
            lines.append(f"peak resident memory, {name} {step}: {shown}")
    start, end = report.get("load_average_at_start"), report.get("load_average_at_end")
    lines.append(f"load average (1, 5, 15 min) at start {start}, at end {end}")
    lines.append("")
    for name, value in report["ratios"].items():
        lines.append(f"{name:<26} {value if value is not None else 'n/a'}")
    return "\n".join(lines)


RUNS = ("full", "incremental", "no_change")
STEPS = ("up", "sources", "extract", "validate", "transform", "maintain")


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "n/a"
    if not before:
        return f"{after - before:+.1f} s"
    return f"{after - before:+.1f} s ({(after - before) / before:+.0%})"


def _dbt_groups(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Nodes and thread seconds per dbt resource type of a run's transform, from its profile."""
    for row in run.get("profile") or []:
        if row.get("step") == "transform" and row.get("table") is None:
            return (row.get("profile") or {}).get("dbt_groups") or {}
    return {}


def compare_reports(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Two bench results side by side: each run's steps, its dbt node groups, the load averages.

    Timings on a shared machine are noisy: read a change against the load averages printed
    with it, and prefer two results taken in one sitting.
    """
    lines = [f"bench results compared: before at {before.get('scale')} scale, after at {after.get('scale')} scale"]
    for name in ("load_average_at_start", "load_average_at_end"):
        a, b = ([round(x, 1) for x in r.get(name) or []] for r in (before, after))
        lines.append(f"{name.replace('_', ' ')} (1, 5, 15 min): before {a}, after {b}")
    for run in RUNS:
        old, new = before.get(run) or {}, after.get(run) or {}
        if not old and not new:
            continue
        lines += ["", f"{run:<12} {'before s':>10} {'after s':>10}  change"]
        for step in STEPS:
            a = (old.get("steps") or {}).get(step, {}).get("seconds")
            b = (new.get("steps") or {}).get(step, {}).get("seconds")
            if a is None and b is None:
                continue
            lines.append(f"  {step:<10} {a or 0:>10.1f} {b or 0:>10.1f}  {_change(a, b)}")
        a, b = old.get("seconds"), new.get("seconds")
        lines.append(f"  {'total':<10} {a or 0:>10.1f} {b or 0:>10.1f}  {_change(a, b)}")
        groups_before, groups_after = _dbt_groups(old), _dbt_groups(new)
        for group in sorted(set(groups_before) | set(groups_after)):
            a_group, b_group = groups_before.get(group, {}), groups_after.get(group, {})
            lines.append(
                f"  {'dbt ' + group:<10} {a_group.get('seconds', 0):>10.1f} {b_group.get('seconds', 0):>10.1f}  "
                f"{_change(a_group.get('seconds'), b_group.get('seconds'))}, "
                f"nodes {a_group.get('nodes', 0)} -> {b_group.get('nodes', 0)} (thread seconds)"
            )
    ratios_before, ratios_after = before.get("ratios") or {}, after.get("ratios") or {}
    if ratios_before or ratios_after:
        lines += ["", f"{'ratio':<26} {'before':>8} {'after':>8}"]
        for name in sorted(set(ratios_before) | set(ratios_after)):
            lines.append(f"{name:<26} {ratios_before.get(name)!s:>8} {ratios_after.get(name)!s:>8}")
    return "\n".join(lines)


def write_report(config: Config, report: dict[str, Any], kind: str = "bench") -> Path:
    """The report as JSON in <home>/reports/<kind>-<UTC time>.json."""
    out = config.home / "reports" / f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    return out
