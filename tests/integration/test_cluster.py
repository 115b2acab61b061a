"""Cluster Spark for real: a standalone master and two workers on 127.0.0.1 sharing nothing but
the object store (SeaweedFS, an s3a:// warehouse) and the metastore, the extract-and-validate
job and the Thrift server on them, and the results equal to a ``local[2]`` run on the same
sources.

The cluster run is set up the way the compose stack is: PostgreSQL and MongoDB as external
servers (``LAKEHOUSE_POSTGRES_URL``, ``LAKEHOUSE_MONGODB_URI``), its own metastore database and
warehouse (a bucket of its own SeaweedFS), the Thrift server started by the image's entry point
(``docker/entrypoint.sh thrift``) in the foreground, and the job submitted while that server
holds its share of the cluster (``spark.deploy.defaultCores`` keeps it from taking every core).
Each worker is a process of its own with its own cores, memory and work directory; the
executors run a Python that has the project's dependencies but not the project
(``cluster.dependencies_only_python``), so the code they run is the archive the job shipped
(``SparkContext.addPyFile``), as it would be on another host. The local run is the tests' usual stack; the
two catalogs and warehouses are separate. On the local side this module uses the run's tiny
bronze (``tiny_bronze``: tiny sources of seed 42 and the bronze a local[2] extract made of
them), and dbt rebuilds the content models of silver and gold from it. The two sides are
compared by a fingerprint each computes in its own Spark (row count and two sums of row hashes).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse import profiling
from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.services import cluster, objectstore, postgres
from lakehouse.services import thrift as thrift_service
from lakehouse.services.process import read_pid, start_background, stop_pid, wait_until
from lakehouse.serving.sql_client import run_query
from lakehouse.spark import spark_env, spark_submit_command, write_spark_conf

pytestmark = pytest.mark.integration

ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
CLUSTER_METASTORE = "metastore_cluster"
EXTRACT_APP = "lakehouse-ingest"  # the name jobs/ingest.py gives its session
WORKERS = 2
CLUSTER_BUCKET = "lakehouse-cluster"
# The cluster's SeaweedFS: this plus the run's port offset (test_object_store.py uses 18383).
OBJECT_STORE_BASE_PORT = 18433
THRIFT_STARTUP_SECONDS = 240
JOB_TIMEOUT_SECONDS = 600
# Columns that differ between two runs by design: when and in which batch a row was written.
RUN_COLUMNS = ("_ingested_at", "_batch_id", "batch_id", "quarantined_at")
# Sums of 64-bit hashes over many rows overflow a bigint; a decimal holds them exactly.
HASH_SUM = "decimal(38,0)"


@dataclass(frozen=True)
class ClusterStack:
    config: Config  # the cluster run's config (its own home, metastore and warehouse)
    env: dict[str, str]  # the environment every process of the cluster run gets
    settings: cluster.ClusterSettings


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _drop_database(config: Config, name: str) -> None:
    conn = postgres.connect(config, "postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        conn.close()


@pytest.fixture(scope="module")
def stack(services: Config, tiny_bronze) -> Iterator[ClusterStack]:
    """A master, two workers and a SeaweedFS on 127.0.0.1, and the cluster run's config; all
    stopped at the end."""
    home = services.home / "cluster"
    shutil.rmtree(home, ignore_errors=True)
    _drop_database(services, CLUSTER_METASTORE)
    master_port, master_ui, worker_ui, thrift_port = _free_ports(4)
    settings = cluster.ClusterSettings(
        master_port=master_port,
        master_webui_port=master_ui,
        worker_webui_port=worker_ui,
        worker_cores=2,
        worker_memory="2g",
        default_cores=2,
    )
    pg = services.postgres
    overrides = {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_CACHE_DIR": str(services.cache_dir),
        "LAKEHOUSE_SPARK_MASTER": settings.master_url,
        "LAKEHOUSE_SPARK_EXECUTOR_MEMORY": "1g",
        "LAKEHOUSE_SPARK_WAREHOUSE_DIR": f"s3a://{CLUSTER_BUCKET}/warehouse",
        "LAKEHOUSE_OBJECT_STORE_PORT": str(OBJECT_STORE_BASE_PORT + services.thrift.port - 10010),
        "LAKEHOUSE_POSTGRES_URL": f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}",
        "LAKEHOUSE_POSTGRES_PASSWORD": pg.password,
        "LAKEHOUSE_POSTGRES_METASTORE_DATABASE": CLUSTER_METASTORE,
        "LAKEHOUSE_MONGODB_URI": services.mongodb.connection_uri,
        "LAKEHOUSE_THRIFT_HOST": "127.0.0.1",
        "LAKEHOUSE_THRIFT_PORT": str(thrift_port),
        # Drivers and executors on the loopback interface only.
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The entry point runs `python` and `lakehouse` from the PATH, as in the image.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # Not the local run's conf directory (the session fixture exported it): each launch sets its
    # own. Nor its PYTHONPATH: the executors get the project's code from the job only.
    env = {**{k: v for k, v in os.environ.items() if k not in ("SPARK_CONF_DIR", "PYTHONPATH")}, **overrides}
    env["LAKEHOUSE_SPARK_EXECUTOR_PYTHON"] = str(cluster.dependencies_only_python(load_config(env=env)))
    config = load_config(env=env)
    try:
        objectstore.start(config)
        cluster.start(config, settings, workers=WORKERS)
        yield ClusterStack(config, env, settings)
    finally:
        cluster.stop(config)
        objectstore.stop(config)


@pytest.fixture(scope="module")
def cluster_thrift(stack: ClusterStack) -> Iterator[int]:
    """The image's thrift role, run here: prepares the metastore, then becomes the server."""
    config = stack.config
    pid_file = config.run_dir / "thrift.pid"
    log_file = config.log_dir / "thrift.log"
    start_background([str(ENTRYPOINT), "thrift"], log_file=log_file, pid_file=pid_file, env=stack.env)
    try:
        wait_until(
            lambda: thrift_service.healthy(config),
            timeout=THRIFT_STARTUP_SECONDS,
            what="thrift server on the cluster",
            alive=lambda: read_pid(pid_file) is not None,
            log_file=log_file,
        )
        pid = read_pid(pid_file)
        assert pid is not None
        yield pid
    finally:
        pid = read_pid(pid_file)
        if pid is not None:
            stop_pid(pid)
        pid_file.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def cluster_extract(stack: ClusterStack, cluster_thrift: int) -> subprocess.CompletedProcess:
    """`spark-submit jobs/ingest.py` (extract, then the gate) against the cluster master, while
    the Thrift server runs on it."""
    config = stack.config
    write_spark_conf(config)
    command = spark_submit_command(
        config, str(PROJECT_ROOT / "jobs" / "ingest.py"), ["--run-id", "cluster"], app_name=EXTRACT_APP
    )
    return subprocess.run(
        command,
        env={**spark_env(config), **stack.env, "SPARK_CONF_DIR": str(config.spark_conf_dir)},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_SECONDS,
        check=False,
    )


def _columns(spark: SparkSession, table: str) -> list[str]:
    """The table's columns in the local catalog, without those that differ between runs by design."""
    return [c for c in spark.table(table).columns if c not in RUN_COLUMNS]


def _fingerprint_sql(table: str, columns: list[str]) -> str:
    """Row count and two sums of per-row hashes: equal for equal multisets of rows (one pass)."""
    row = f"struct({', '.join(f'`{c}`' for c in columns)})"
    return (
        f"select count(1), sum(cast(xxhash64({row}) as {HASH_SUM})), sum(cast(hash({row}) as {HASH_SUM})) from {table}"
    )


def _assert_same_rows(spark: SparkSession, stack: ClusterStack, local: str, remote: str | None = None) -> None:
    """The local table and the cluster's (read by the cluster's Thrift server from the bucket)
    hold the same rows, apart from the run columns."""
    columns = _columns(spark, local)
    mine = tuple(spark.sql(_fingerprint_sql(local, columns)).first())
    assert mine[0] > 0, local
    detail = run_query(stack.config, f"describe detail {remote or local}")
    location = str(detail.rows[0][detail.columns.index("location")])
    assert location.startswith(f"{stack.config.warehouse_dir}/"), location
    theirs = tuple(run_query(stack.config, _fingerprint_sql(remote or local, columns)).rows[0])
    assert tuple(int(v) for v in theirs) == tuple(int(v) for v in mine), f"{local}: cluster {theirs}, local {mine}"


def _executors_of(stack: ClusterStack, app_name: str) -> dict[int, set[str]]:
    """Worker index -> the executor ids it ran for the application (from each worker's JSON)."""
    found = {}
    for index in range(1, WORKERS + 1):
        state = cluster.worker_state(stack.settings.host, stack.settings.worker_webui_port + index - 1)
        assert state is not None, f"worker {index} does not answer"
        found[index] = {
            str(e["id"]) for e in state["executors"] + state["finishedexecutors"] if e["appdesc"]["name"] == app_name
        }
    return found


def test_master_and_two_workers_listen_on_loopback_and_registered(stack: ClusterStack) -> None:
    settings = stack.settings
    state = cluster.master_state(settings.host, settings.master_webui_port)
    assert state is not None and state["status"] == "ALIVE"
    assert [w["host"] for w in state["workers"] if w["state"] == "ALIVE"] == ["127.0.0.1"] * WORKERS
    assert state["cores"] == settings.worker_cores * WORKERS
    # Separate processes, each with its own work directory.
    pids = {read_pid(cluster.worker_pid_file(stack.config, i)) for i in range(1, WORKERS + 1)}
    assert None not in pids and len(pids) == WORKERS
    # The image's healthchecks, run here against these daemons.
    env = {
        **stack.env,
        "SPARK_MASTER_HOST": settings.host,
        "SPARK_MASTER_PORT": str(settings.master_port),
        "SPARK_MASTER_WEBUI_PORT": str(settings.master_webui_port),
        "SPARK_WORKER_WEBUI_PORT": str(settings.worker_webui_port),
    }
    for role in ("master", "worker"):
        result = subprocess.run([str(ENTRYPOINT), "health", role], env=env, capture_output=True, check=False)
        assert result.returncode == 0, (role, result.stderr)


def test_the_executors_python_has_the_dependencies_but_not_the_project(stack: ClusterStack) -> None:
    python = stack.config.spark.executor_python
    assert python is not None and python != sys.executable
    deps = subprocess.run([python, "-c", "import pymongo, pyspark"], capture_output=True, text=True, check=False)
    assert deps.returncode == 0, deps.stderr
    code = subprocess.run(
        [python, "-c", "import lakehouse"], capture_output=True, text=True, cwd="/", env={}, check=False
    )
    assert "No module named 'lakehouse'" in code.stderr


def test_extract_and_gate_on_the_cluster_write_the_same_bronze_as_local(
    spark: SparkSession, stack: ClusterStack, cluster_extract: subprocess.CompletedProcess
) -> None:
    assert cluster_extract.returncode == 0, cluster_extract.stdout[-2000:] + cluster_extract.stderr[-3000:]
    # The job was an application of the cluster.
    master = cluster.master_state(stack.settings.host, stack.settings.master_webui_port)
    assert master is not None and EXTRACT_APP in [a["name"] for a in master["completedapps"]]
    tables = sorted(t.name for t in spark.catalog.listTables("bronze") if not t.isTemporary)
    assert {"users", "viewing_sessions", "ratings", "content", "quarantine"} <= set(tables)
    for table in tables:
        _assert_same_rows(spark, stack, f"bronze.{table}")
    marks = ("source_system", "source_table", "watermark")
    mine = {tuple(r) for r in spark.table("ops.watermarks").select(*marks).collect()}
    theirs = {tuple(r) for r in run_query(stack.config, f"select {', '.join(marks)} from ops.watermarks").rows}
    assert theirs == mine
    # The gate ran in the same application, on the cluster's bronze.
    [(verdicts,)] = run_query(
        stack.config, "select count(*) from ops.pipeline_runs where run_id = 'cluster' and step = 'validate'"
    ).rows
    assert verdicts >= 4


def test_both_workers_ran_tasks_of_the_job_with_the_code_it_shipped(
    stack: ClusterStack, cluster_extract: subprocess.CompletedProcess
) -> None:
    """What the job read from its own REST API before it stopped (profiling.executor_summary),
    matched to the worker that ran each executor. The MongoDB reader runs in the executors'
    Python, which cannot import the project: its rows in bronze came from the shipped archive."""
    assert cluster_extract.returncode == 0, cluster_extract.stderr[-3000:]
    announced = [profiling.parse_line(line) for line in cluster_extract.stdout.splitlines()]
    [executors] = [a[profiling.EXECUTORS_KEY] for a in announced if a and profiling.EXECUTORS_KEY in a]
    tasks = {e["id"]: e["tasks"] for e in executors if e["id"] != "driver"}
    by_worker = _executors_of(stack, EXTRACT_APP)
    for index, ids in by_worker.items():
        assert ids, f"worker {index} ran no executor of {EXTRACT_APP}: {by_worker}"
        assert sum(tasks.get(i, 0) for i in ids) > 0, f"worker {index}'s executors {ids} ran no task: {executors}"
    assert all(e["cores"] >= 1 for e in executors if e["id"] != "driver")


def test_thrift_server_from_the_entrypoint_serves_the_cluster_tables(
    spark: SparkSession, stack: ClusterStack, cluster_thrift: int, cluster_extract: subprocess.CompletedProcess
) -> None:
    assert cluster_extract.returncode == 0, cluster_extract.stderr[-3000:]
    # The entry point exec'd down to the JVM: the pid it started is the server (signals reach it).
    assert "HiveThriftServer2" in Path(f"/proc/{cluster_thrift}/cmdline").read_text()
    state = cluster.master_state(stack.settings.host, stack.settings.master_webui_port)
    assert state is not None
    apps = {a["name"]: a for a in state["activeapps"]}
    assert apps[thrift_service.APP_NAME]["cores"] == stack.settings.default_cores

    for table in ("viewing_sessions", "users", "content"):
        served = run_query(stack.config, f"select count(*) from bronze.{table}").rows[0][0]
        assert served == spark.table(f"bronze.{table}").count(), table
    # The server's executors are on both workers too.
    assert all(_executors_of(stack, thrift_service.APP_NAME).values())

    health = subprocess.run([str(ENTRYPOINT), "health"], env=stack.env, capture_output=True, text=True, check=False)
    assert health.returncode == 0, health.stderr


# ------------------------------------------------------------------ gold through dbt on the cluster

# The content side of gold (no snapshot: its validity timestamps differ between two runs by
# design), models only (DBT_INDIRECT_SELECTION=empty): the data tests are the dbt suite's business.
GOLD_SELECTION = "+dim_content +dim_genre +bridge_content_genre"
GOLD_TABLES = ("dim_content", "dim_genre", "bridge_content_genre")


def _transform(config: Config) -> tuple[int, str]:
    from lakehouse.modeling.runner import run_transform

    output = io.StringIO()
    # The tiny bronze of this module never went through the gate: dbt on the cluster is the subject.
    code = run_transform(
        config, select=GOLD_SELECTION, run_id="cluster-test", output=output, errors=output, check_gate=False
    )
    return code, output.getvalue()


def test_dbt_on_the_cluster_thrift_server_builds_the_same_gold_as_local(
    spark: SparkSession,
    services: Config,
    stack: ClusterStack,
    cluster_extract: subprocess.CompletedProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster_extract.returncode == 0, cluster_extract.stderr[-3000:]
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "empty")
    # The local build (the tests' Thrift server) and the cluster build run side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        local_build, cluster_build = pool.map(_transform, [services, stack.config])
    assert local_build[0] == 0, local_build[1][-3000:]
    assert cluster_build[0] == 0, cluster_build[1][-3000:]
    for table in GOLD_TABLES:
        # Published gold is a view pinned to the build table's tested version: the build table
        # itself is what lies in the cluster's warehouse.
        _assert_same_rows(spark, stack, f"gold.{table}", f"gold_build.{table}")
