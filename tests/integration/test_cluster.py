"""Cluster Spark for real: a standalone master with one, then two workers on 127.0.0.1 sharing
nothing but the object store (SeaweedFS, an s3a:// warehouse) and the metastore, the
extract-and-validate job and the Thrift server on them, and the results equal to a ``local[2]``
run on the same sources.

The job runs twice: the first load on a master with one worker (that worker runs every task),
then a second worker registers and the job runs again with ``--full-refresh`` beside the Thrift
server, its tasks on both workers. Both runs' bronze equals the local run's (the first load's
is read back at its Delta version, 1, through the Thrift server).

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
from lakehouse.services import cluster, metastore, objectstore, postgres
from lakehouse.services import thrift as thrift_service
from lakehouse.services.process import port_open, read_pid, start_background, stop_pid, wait_until
from lakehouse.serving.sql_client import run_query
from lakehouse.spark import spark_env, spark_submit_command, write_spark_conf

pytestmark = pytest.mark.integration

ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
CLUSTER_METASTORE = "metastore_cluster"
EXTRACT_APP = "lakehouse-ingest"  # the name jobs/ingest.py gives its session
WORKERS = 2  # the first load runs while only the first has registered
# The Delta version of a bronze source table that the first load wrote (0 is its creation).
FIRST_LOAD_VERSION = 1
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


def _free_port_run(count: int, taken: list[int]) -> int:
    """The first of `count` consecutive free ports, none of them in `taken`: worker i's web UI
    listens on the first plus i - 1, and cluster.start_worker refuses a port that answers."""
    for _ in range(100):
        [base] = _free_ports(1)
        run = range(base, base + count)
        if not set(run) & set(taken) and not any(port_open("127.0.0.1", port) for port in run):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


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
    """A master, its first worker and a SeaweedFS on 127.0.0.1, and the cluster run's config;
    all stopped at the end (the second worker too: ``two_workers``)."""
    home = services.home / "cluster"
    shutil.rmtree(home, ignore_errors=True)
    _drop_database(services, CLUSTER_METASTORE)
    master_port, master_ui, thrift_port = _free_ports(3)
    worker_ui = _free_port_run(WORKERS, [master_port, master_ui, thrift_port])
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
        cluster.start(config, settings, workers=1)
        yield ClusterStack(config, env, settings)
    finally:
        cluster.stop(config)
        objectstore.stop(config)


def _submit_ingest(stack: ClusterStack, run_id: str, *options: str) -> subprocess.CompletedProcess:
    """`spark-submit jobs/ingest.py` (extract, then the gate) against the cluster master."""
    config = stack.config
    write_spark_conf(config)
    command = spark_submit_command(
        config, str(PROJECT_ROOT / "jobs" / "ingest.py"), ["--run-id", run_id, *options], app_name=EXTRACT_APP
    )
    return subprocess.run(
        command,
        env={**spark_env(config), **stack.env, "SPARK_CONF_DIR": str(config.spark_conf_dir)},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def one_worker_extract(stack: ClusterStack) -> subprocess.CompletedProcess:
    """The first load into the cluster's empty bronze, on the master with one worker (no Thrift
    server yet: the job has the worker's cores to itself). The metastore is prepared first, as
    `lakehouse up` or the image's thrift role does."""
    postgres.ensure_databases(stack.config)
    metastore.ensure_schema(stack.config)
    return _submit_ingest(stack, "cluster-1-worker")


@pytest.fixture(scope="module")
def two_workers(stack: ClusterStack, one_worker_extract: subprocess.CompletedProcess) -> int:
    """The second worker registers with the running master, after the one-worker run."""
    cluster.start_worker(stack.config, stack.settings, index=WORKERS)
    return WORKERS


@pytest.fixture(scope="module")
def cluster_thrift(stack: ClusterStack, two_workers: int) -> Iterator[int]:
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
    """The job again on both workers, while the Thrift server runs on them: a full refresh (the
    sources have not changed since the first load: an incremental run would find nothing to
    extract)."""
    return _submit_ingest(stack, "cluster", "--full-refresh")


def _columns(spark: SparkSession, table: str) -> list[str]:
    """The table's columns in the local catalog, without those that differ between runs by design."""
    return [c for c in spark.table(table).columns if c not in RUN_COLUMNS]


def _fingerprint_sql(table: str, columns: list[str]) -> str:
    """Row count and two sums of per-row hashes: equal for equal multisets of rows (one pass)."""
    row = f"struct({', '.join(f'`{c}`' for c in columns)})"
    return (
        f"select count(1), sum(cast(xxhash64({row}) as {HASH_SUM})), sum(cast(hash({row}) as {HASH_SUM})) from {table}"
    )


def _assert_same_rows(
    spark: SparkSession, stack: ClusterStack, local: str, remote: str | None = None, *, version: int | None = None
) -> None:
    """The local table and the cluster's (read by the cluster's Thrift server from the bucket;
    at Delta version `version` if given) hold the same rows, apart from the run columns."""
    columns = _columns(spark, local)
    mine = tuple(spark.sql(_fingerprint_sql(local, columns)).first())
    assert mine[0] > 0, local
    detail = run_query(stack.config, f"describe detail {remote or local}")
    location = str(detail.rows[0][detail.columns.index("location")])
    assert location.startswith(f"{stack.config.warehouse_dir}/"), location
    read = remote or local
    if version is not None:
        read = f"{read} version as of {version}"
    theirs = tuple(run_query(stack.config, _fingerprint_sql(read, columns)).rows[0])
    assert tuple(int(v) for v in theirs) == tuple(int(v) for v in mine), f"{read}: cluster {theirs}, local {mine}"


def _ingest_app_ids(stack: ClusterStack) -> list[str]:
    """The ids of the ingest job's applications the master has seen end, the first first."""
    state = cluster.master_state(stack.settings.host, stack.settings.master_webui_port)
    assert state is not None
    apps = sorted((a for a in state["completedapps"] if a["name"] == EXTRACT_APP), key=lambda a: a["starttime"])
    return [a["id"] for a in apps]


def _executors_of(
    stack: ClusterStack, app_name: str | None = None, *, app_id: str | None = None, workers: int = WORKERS
) -> dict[int, set[str]]:
    """Worker index -> the executor ids it ran for the application named `app_name` or with id
    `app_id` (from each worker's JSON)."""
    found = {}
    for index in range(1, workers + 1):
        state = cluster.worker_state(stack.settings.host, stack.settings.worker_webui_port + index - 1)
        assert state is not None, f"worker {index} does not answer"
        found[index] = {
            str(e["id"])
            for e in state["executors"] + state["finishedexecutors"]
            if (e["appid"] == app_id if app_id else e["appdesc"]["name"] == app_name)
        }
    return found


def _tasks_by_executor(job: subprocess.CompletedProcess) -> dict[str, int]:
    """Tasks per executor (not the driver), as the job read them from its own REST API before it
    stopped (profiling.executor_summary)."""
    announced = [profiling.parse_line(line) for line in job.stdout.splitlines()]
    [executors] = [a[profiling.EXECUTORS_KEY] for a in announced if a and profiling.EXECUTORS_KEY in a]
    assert all(e["cores"] >= 1 for e in executors if e["id"] != "driver"), executors
    return {e["id"]: e["tasks"] for e in executors if e["id"] != "driver"}


def test_the_first_load_ran_every_task_on_the_one_worker(
    stack: ClusterStack, one_worker_extract: subprocess.CompletedProcess
) -> None:
    assert one_worker_extract.returncode == 0, one_worker_extract.stdout[-2000:] + one_worker_extract.stderr[-3000:]
    state = cluster.master_state(stack.settings.host, stack.settings.master_webui_port)
    assert state is not None
    assert len([w for w in state["workers"] if w["state"] == "ALIVE"]) == 1
    tasks = _tasks_by_executor(one_worker_extract)
    first_app = _ingest_app_ids(stack)[0]
    [on_worker] = _executors_of(stack, app_id=first_app, workers=1).values()
    assert on_worker and on_worker == set(tasks), (on_worker, tasks)
    assert sum(tasks.values()) > 0, tasks


def test_master_and_two_workers_listen_on_loopback_and_registered(stack: ClusterStack, two_workers: int) -> None:
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


def test_the_first_load_on_one_worker_wrote_the_same_bronze_as_local(
    spark: SparkSession, stack: ClusterStack, one_worker_extract: subprocess.CompletedProcess, cluster_thrift: int
) -> None:
    assert one_worker_extract.returncode == 0, one_worker_extract.stderr[-3000:]
    for table in ("users", "viewing_sessions", "ratings", "content"):
        _assert_same_rows(spark, stack, f"bronze.{table}", version=FIRST_LOAD_VERSION)
    [(verdicts,)] = run_query(
        stack.config, "select count(*) from ops.pipeline_runs where run_id = 'cluster-1-worker' and step = 'validate'"
    ).rows
    assert verdicts >= 4


def test_both_workers_ran_tasks_of_the_job_with_the_code_it_shipped(
    stack: ClusterStack, cluster_extract: subprocess.CompletedProcess
) -> None:
    """What the job read from its own REST API, matched to the worker that ran each executor.
    The MongoDB reader runs in the executors' Python, which cannot import the project: its rows
    in bronze came from the shipped archive."""
    assert cluster_extract.returncode == 0, cluster_extract.stderr[-3000:]
    tasks = _tasks_by_executor(cluster_extract)
    _, second_app = _ingest_app_ids(stack)
    by_worker = _executors_of(stack, app_id=second_app)
    for index, ids in by_worker.items():
        assert ids, f"worker {index} ran no executor of {second_app}: {by_worker}"
        assert sum(tasks.get(i, 0) for i in ids) > 0, f"worker {index}'s executors {ids} ran no task: {tasks}"


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
