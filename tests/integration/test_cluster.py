"""Cluster Spark for real: a standalone master and worker on 127.0.0.1, the extract job and the
Thrift server on it, and the results equal to a ``local[2]`` run on the same sources.

The cluster run is set up the way the compose stack is: PostgreSQL and MongoDB as external
servers (``LAKEHOUSE_POSTGRES_URL``, ``LAKEHOUSE_MONGODB_URI``), its own metastore database and
warehouse, the Thrift server started by the image's entry point (``docker/entrypoint.sh
thrift``) in the foreground, and an extract job submitted while that server holds its share of
the cluster (``spark.deploy.defaultCores`` keeps it from taking every core). The local run is
the tests' usual stack; the two catalogs and warehouses are separate. On the local side this
module uses the run's tiny bronze (``tiny_bronze``: tiny sources of seed 42 and the bronze a
local[2] extract made of them), and dbt rebuilds the content models of silver and gold from it.
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
from urllib.parse import urlsplit

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.services import cluster, postgres
from lakehouse.services import thrift as thrift_service
from lakehouse.services.process import read_pid, start_background, stop_pid, wait_until
from lakehouse.serving.sql_client import run_query
from lakehouse.spark import spark_env, spark_submit_command, write_spark_conf

pytestmark = pytest.mark.integration

ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
CLUSTER_METASTORE = "metastore_cluster"
EXTRACT_APP = "lakehouse-extract-all"
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
    """A master and one worker on 127.0.0.1, and the cluster run's config; all stopped at the end."""
    home = services.home / "cluster"
    shutil.rmtree(home, ignore_errors=True)
    _drop_database(services, CLUSTER_METASTORE)
    master_port, master_ui, worker_ui, thrift_port = _free_ports(4)
    settings = cluster.ClusterSettings(
        master_port=master_port,
        master_webui_port=master_ui,
        worker_webui_port=worker_ui,
        worker_cores=4,
        worker_memory="3g",
        default_cores=2,
    )
    pg = services.postgres
    overrides = {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_CACHE_DIR": str(services.cache_dir),
        "LAKEHOUSE_SPARK_MASTER": settings.master_url,
        "LAKEHOUSE_SPARK_EXECUTOR_MEMORY": "1g",
        "LAKEHOUSE_SPARK_WAREHOUSE_DIR": (home / "warehouse").as_uri(),
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
    # Not the local run's conf directory (the session fixture exported it): each launch sets its own.
    env = {**{k: v for k, v in os.environ.items() if k != "SPARK_CONF_DIR"}, **overrides}
    config = load_config(env=env)
    try:
        cluster.start(config, settings)
        yield ClusterStack(config, env, settings)
    finally:
        cluster.stop(config)


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
    """`spark-submit jobs/extract.py` against the cluster master, while the Thrift server runs on it."""
    config = stack.config
    write_spark_conf(config)
    command = spark_submit_command(
        config, str(PROJECT_ROOT / "jobs" / "extract.py"), ["--run-id", "cluster"], app_name=EXTRACT_APP
    )
    return subprocess.run(
        command,
        env={**spark_env(config), **stack.env, "SPARK_CONF_DIR": str(config.spark_conf_dir)},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_SECONDS,
        check=False,
    )


def _comparable(frame: DataFrame) -> DataFrame:
    return frame.drop(*[c for c in RUN_COLUMNS if c in frame.columns])


def _fingerprint(frame: DataFrame) -> tuple:
    """Row count and two sums of per-row hashes: equal for equal multisets of rows (one pass)."""
    row = F.struct(*frame.columns)
    return tuple(
        frame.agg(
            F.count(F.lit(1)),
            F.sum(F.xxhash64(row).cast(HASH_SUM)),
            F.sum(F.hash(row).cast(HASH_SUM)),
        ).first()
    )


def _assert_same_rows(actual: DataFrame, expected: DataFrame, what: str) -> None:
    """Equal as multisets of rows; only when they differ are the differing rows computed and shown."""
    assert actual.schema == expected.schema, what
    if _fingerprint(actual) != _fingerprint(expected):
        extra, missing = actual.exceptAll(expected), expected.exceptAll(actual)
        pytest.fail(f"{what}: only on the cluster {extra.limit(3).collect()}, only local {missing.limit(3).collect()}")


def _cluster_table(spark: SparkSession, stack: ClusterStack, table: str) -> DataFrame:
    """A table of the cluster run, read by its location in the cluster's own catalog."""
    detail = run_query(stack.config, f"describe detail {table}")
    location = detail.rows[0][detail.columns.index("location")]
    warehouse = Path(urlsplit(stack.config.warehouse_dir).path)
    assert Path(urlsplit(str(location)).path).is_relative_to(warehouse), location
    return spark.read.format("delta").load(location)


def test_master_and_worker_listen_on_loopback_and_the_worker_registered(stack: ClusterStack) -> None:
    settings = stack.settings
    state = cluster.master_state(settings.host, settings.master_webui_port)
    assert state is not None and state["status"] == "ALIVE"
    assert [w["host"] for w in state["workers"] if w["state"] == "ALIVE"] == ["127.0.0.1"]
    assert state["cores"] == settings.worker_cores
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


def test_extract_on_the_cluster_writes_the_same_bronze_as_local(
    spark: SparkSession, stack: ClusterStack, cluster_extract: subprocess.CompletedProcess
) -> None:
    assert cluster_extract.returncode == 0, cluster_extract.stderr[-3000:]
    # The job was an application of the cluster and its tasks ran in executors on the worker.
    master = cluster.master_state(stack.settings.host, stack.settings.master_webui_port)
    assert master is not None and EXTRACT_APP in [a["name"] for a in master["completedapps"]]
    worker = cluster.worker_state(stack.settings.host, stack.settings.worker_webui_port)
    assert worker is not None
    executors = worker["executors"] + worker["finishedexecutors"]
    assert EXTRACT_APP in [e["appdesc"]["name"] for e in executors]

    tables = sorted(t.name for t in spark.catalog.listTables("bronze") if not t.isTemporary)
    assert {"users", "viewing_sessions", "ratings", "content", "quarantine"} <= set(tables)
    for table in tables:
        local = _comparable(spark.table(f"bronze.{table}"))
        assert not local.isEmpty(), table
        _assert_same_rows(_comparable(_cluster_table(spark, stack, f"bronze.{table}")), local, f"bronze.{table}")

    marks = ("source_system", "source_table", "watermark")
    local_marks = spark.table("ops.watermarks").select(*marks)
    _assert_same_rows(_cluster_table(spark, stack, "ops.watermarks").select(*marks), local_marks, "ops.watermarks")


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
        local = spark.table(f"gold.{table}")
        assert not local.isEmpty(), table
        # Published gold is a view pinned to the build table's tested version: the build table
        # itself is what lies in the cluster's warehouse.
        _assert_same_rows(_cluster_table(spark, stack, f"gold_build.{table}"), local, f"gold.{table}")
