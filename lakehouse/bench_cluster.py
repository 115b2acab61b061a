"""`lakehouse bench --cluster`: the pipeline on a Spark standalone cluster with one, then two workers.

Each run starts from an empty state directory of its own (``<home>/bench-cluster``, ports
2000 above the defaults) with the warehouse in a SeaweedFS bucket (``s3a://``), a master and N
worker processes on 127.0.0.1 (each its own ``--cores``, ``--memory`` and work directory), the
executors on a Python that has the project's dependencies but not the project (the jobs ship
the code, as to another host), and the Thrift server on the same cluster. The same generated
sources are loaded for every run; then ``lakehouse pipeline`` runs to the end of ``maintain``.

Per run the JSON keeps the steps' seconds and, for the extract-and-validate application (what
it read from its own REST API before it stopped) and the Thrift server (dbt's work; its REST API
after the run), every executor with its worker, cores, tasks and task seconds.

The cluster advertises ``TOTAL_CORES`` cores whatever the number of workers (one worker with
all, or two with half each) and every application gets ``APP_CORES`` of them, so the runs
differ in how the work is spread, not in the cores on offer. On a 2-core machine that is all
they can show: the workers share the same two cores, and more workers cost more JVMs and more
shuffle over the network stack. Nothing here is a test.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

from lakehouse.bench import BenchError, bench_environment, stack_cli, timed_pipeline, write_report
from lakehouse.config import Config, load_config

PORT_OFFSET = 2000
BUCKET = "lakehouse-bench"
# What the cluster advertises in total, and what each application (Thrift server, a job) gets:
# two applications run side by side (the server holds its cores for its whole life).
TOTAL_CORES = 4
TOTAL_MEMORY_GB = 4
APP_CORES = 2
EXECUTOR_MEMORY = "1g"
# The application of the pipeline's extract step (jobs/ingest.py: extract, then the gate).
INGEST_APP = "lakehouse-ingest"


def cluster_environment(config: Config) -> dict[str, str]:
    """The bench cluster's stack (bench_environment's, in <home>/bench-cluster on ports +2000),
    with the warehouse on s3a and nothing of the checkout on the executors' path."""
    env = bench_environment(config, "bench-cluster", PORT_OFFSET)
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "LAKEHOUSE_THRIFT_UI_PORT": str(config.thrift.ui_port + PORT_OFFSET),
            "LAKEHOUSE_OBJECT_STORE_PORT": str(config.object_store.port + PORT_OFFSET),
            "LAKEHOUSE_SPARK_WAREHOUSE_DIR": f"s3a://{BUCKET}/warehouse",
            "LAKEHOUSE_SPARK_EXECUTOR_MEMORY": EXECUTOR_MEMORY,
            "SPARK_LOCAL_IP": "127.0.0.1",
        }
    )
    return env


def _settings(workers: int):
    from lakehouse.services.cluster import ClusterSettings

    return ClusterSettings(
        master_port=7077 + PORT_OFFSET,
        master_webui_port=8080 + PORT_OFFSET,
        worker_webui_port=8081 + PORT_OFFSET,
        worker_cores=TOTAL_CORES // workers,
        worker_memory=f"{TOTAL_MEMORY_GB // workers}g",
        default_cores=APP_CORES,
    )


def _executors_by_worker(settings, workers: int) -> dict[str, dict[str, int]]:
    """Application name -> executor id -> the worker (1..N) that ran it, from each worker's JSON."""
    from lakehouse.services.cluster import worker_state

    found: dict[str, dict[str, int]] = {}
    for index in range(1, workers + 1):
        state = worker_state(settings.host, settings.worker_webui_port + index - 1) or {}
        for executor in state.get("executors", []) + state.get("finishedexecutors", []):
            found.setdefault(executor["appdesc"]["name"], {})[str(executor["id"])] = index
    return found


def _with_workers(executors: list[dict[str, Any]] | None, owners: dict[str, int]) -> list[dict[str, Any]]:
    return [dict(e, worker=owners.get(str(e["id"]))) for e in executors or []]


def _per_worker(executors: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    totals: dict[int, dict[str, Any]] = {}
    for executor in executors:
        if executor.get("worker") is None:
            continue
        entry = totals.setdefault(executor["worker"], {"executors": 0, "cores": 0, "tasks": 0, "task_s": 0.0})
        entry["executors"] += 1
        entry["cores"] += executor.get("cores") or 0
        entry["tasks"] += executor.get("tasks") or 0
        entry["task_s"] = round(entry["task_s"] + (executor.get("task_s") or 0), 1)
    return totals


def _one_run(config: Config, workers: int, data: Path, progress) -> dict[str, Any]:
    from lakehouse import profiling
    from lakehouse.services import cluster

    env = cluster_environment(config)
    home = Path(env["LAKEHOUSE_HOME"])
    stack_cli(env, "down")
    if home.exists():
        for child in home.iterdir():
            if child.name != "secrets":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    stack = load_config(env=env)
    settings = _settings(workers)
    env["LAKEHOUSE_SPARK_MASTER"] = settings.master_url
    env["LAKEHOUSE_SPARK_EXECUTOR_PYTHON"] = str(cluster.dependencies_only_python(stack))
    stack = load_config(env=env)
    run: dict[str, Any] = {
        "workers": workers,
        "worker_cores": settings.worker_cores,
        "worker_memory": settings.worker_memory,
        "app_cores": APP_CORES,
        "executor_memory": EXECUTOR_MEMORY,
        "load_average_at_start": os.getloadavg(),
    }
    progress(f"bench --cluster: {workers} worker(s) of {settings.worker_cores} cores, {settings.worker_memory}")
    try:
        cluster.start(stack, settings, workers=workers)
        up = stack_cli(env, "up")
        if up.returncode != 0:
            raise BenchError(f"bench --cluster: could not start the services: {up.stdout.strip()[-500:]}")
        loaded = stack_cli(env, "load-sources", "--data", str(data), "--replace")
        if loaded.returncode != 0:
            raise BenchError(f"bench --cluster: could not load the sources: {loaded.stdout.strip()[-500:]}")
        log = home / "reports" / f"pipeline-{workers}-workers.log"
        run |= timed_pipeline(env, log, "--scale", data.name)
        owners = _executors_by_worker(settings, workers)
        profile = profiling.read_profile(stack, run["run_id"])
        ingest = next(
            (
                (row.get("profile") or {})[profiling.EXECUTORS_KEY]
                for row in profile
                if profiling.EXECUTORS_KEY in (row.get("profile") or {})
            ),
            None,
        )
        host = "127.0.0.1" if stack.thrift.host in ("0.0.0.0", "::") else stack.thrift.host
        thrift_rest = f"http://{host}:{stack.thrift.ui_port}"
        from lakehouse.services.thrift import APP_NAME as THRIFT_APP

        run["executors"] = {
            "ingest": _with_workers(ingest, owners.get(INGEST_APP, {})),
            "thrift": _with_workers(profiling.rest_executors(thrift_rest), owners.get(THRIFT_APP, {})),
        }
        run["per_worker"] = {name: _per_worker(found) for name, found in run["executors"].items()}
        run["profile"] = profile
    finally:
        stack_cli(env, "down")
        cluster.stop(stack)
    run["load_average_at_end"] = os.getloadavg()
    return run


def run_cluster_bench(config: Config, scale: str = "small", workers: tuple[int, ...] = (1, 2), progress=print):
    """The pipeline on the cluster with each number of workers in turn; the report."""
    data = config.data_dir / scale
    if not (data / "manifest.json").exists():
        progress(f"bench --cluster: generating the {scale} sources into {data}")
        from lakehouse.sources.generate import generate

        generate(data, scale=scale, seed=42, defect_rate=0.01, progress=progress)
    report: dict[str, Any] = {
        "kind": "cluster",
        "scale": scale,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "cpus": os.cpu_count(),
        "total_cores_advertised": TOTAL_CORES,
        "runs": [_one_run(config, n, data, progress) for n in workers],
        "ended_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    return report


def write_cluster_report(config: Config, report: dict[str, Any]) -> Path:
    return write_report(config, report, kind="bench-cluster")


def format_cluster_report(report: dict[str, Any]) -> str:
    lines = [
        f"cluster benchmark at {report['scale']} scale on a {report['cpus']}-core machine "
        f"({report['total_cores_advertised']} cores advertised in total, {APP_CORES} per application)",
        "",
        f"{'workers':<8} {'total s':>8} {'extract':>8} {'validate':>8} {'transform':>9} {'maintain':>9}"
        "  tasks per worker",
    ]
    for run in report["runs"]:
        steps = run.get("steps", {})
        cells = [f"{(steps.get(s) or {}).get('seconds') or 0:>8.1f}" for s in ("extract", "validate")]
        cells += [f"{(steps.get(s) or {}).get('seconds') or 0:>9.1f}" for s in ("transform", "maintain")]
        spread = "; ".join(
            f"{name}: " + ", ".join(f"w{w} {t['tasks']}" for w, t in sorted(found.items()))
            for name, found in (run.get("per_worker") or {}).items()
        )
        lines.append(f"{run['workers']:<8} {run.get('seconds', 0):>8.1f} {' '.join(cells)}  {spread}")
    return "\n".join(lines)
