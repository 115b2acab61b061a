"""The warehouse on S3-compatible object storage: the tiny pipeline against SeaweedFS.

A stack of its own, as a user starts it with ``spark.warehouse_dir`` = ``s3a://...``: its own
state directory, PostgreSQL, FerretDB, SeaweedFS (started by ``lakehouse up`` from the binary
``make object-store`` built into the user's cache) and Thrift server, on ports of its own. One
``lakehouse pipeline --scale tiny`` from nothing to the end of ``maintain``; then what it left in
the bucket, what the Thrift server serves from there, a second run with nothing to do, a second
writer refused while one holds the writer lock, and a lakehouse built on local disk (the
session's) refused with one line when pointed at the bucket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse.config import Config, load_config
from lakehouse.pipeline.lock import writer_lock
from lakehouse.services import objectstore
from lakehouse.serving.sql_client import run_queries

pytestmark = pytest.mark.integration

BUCKET = "lakehouse-test"
WAREHOUSE = f"s3a://{BUCKET}/warehouse"
# The stack's ports: the session's plus this, so that no other stack of the suite collides.
PORT_SHIFT = 50
OBJECT_STORE_BASE_PORT = 18383
PIPELINE_TIMEOUT_SECONDS = 900
COMMAND_TIMEOUT_SECONDS = 300
DELTA_SCHEMAS = ("bronze", "silver_build", "gold_build", "ops")


@dataclass(frozen=True)
class S3Stack:
    config: Config
    env: dict[str, str]
    first_run: subprocess.CompletedProcess

    def cli(self, *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS, **extra: str) -> subprocess.CompletedProcess:
        return _cli(self.env | extra, *args, timeout=timeout)

    def query(self, *queries: str) -> list[list[tuple]]:
        return [result.rows for result in run_queries(self.config, list(queries))]


def _run(env: dict[str, str], argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _cli(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess:
    return _run(env, [sys.executable, "-m", "lakehouse.cli", *args], timeout)


def _stack_env(session: Config) -> dict[str, str]:
    """The session's environment (tests/conftest.py) with a home, ports and warehouse of its own."""
    offset = session.thrift.port - 10010  # LAKEHOUSE_TEST_PORT_OFFSET
    return dict(os.environ) | {
        "LAKEHOUSE_HOME": str(session.home.parent / f"{session.home.name}-s3"),
        "LAKEHOUSE_POSTGRES_PORT": str(session.postgres.port + PORT_SHIFT),
        "LAKEHOUSE_MONGODB_PORT": str(session.mongodb.port + PORT_SHIFT),
        "LAKEHOUSE_THRIFT_PORT": str(session.thrift.port + PORT_SHIFT),
        "LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE,
        "LAKEHOUSE_OBJECT_STORE_PORT": str(OBJECT_STORE_BASE_PORT + offset),
    }


@pytest.fixture(scope="module")
def s3_stack(config: Config) -> Iterator[S3Stack]:
    """The tiny pipeline from an empty state directory with the warehouse in a SeaweedFS bucket."""
    env = _stack_env(config)
    stack_config = load_config(env=env)
    if not objectstore.binary_path(stack_config).exists():
        pytest.fail(f"SeaweedFS is not built at {objectstore.binary_path(stack_config)}: run `make object-store`")
    _cli(env, "down", timeout=COMMAND_TIMEOUT_SECONDS)
    if stack_config.home.exists():
        shutil.rmtree(stack_config.home)
    try:
        first = _cli(env, "pipeline", "--scale", "tiny", timeout=PIPELINE_TIMEOUT_SECONDS)
        yield S3Stack(load_config(env=env), env, first)
    finally:
        _cli(env, "down", timeout=COMMAND_TIMEOUT_SECONDS)


def test_the_tiny_pipeline_runs_to_the_end_with_the_warehouse_in_the_bucket(s3_stack: S3Stack) -> None:
    run = s3_stack.first_run
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert "started postgres, mongodb, objectstore, thrift" in run.stdout
    for step in ("extract", "validate", "transform", "maintain"):
        assert f"    {step}: succeeded" in run.stdout, run.stdout[-3000:]


def test_every_delta_table_and_its_log_live_in_the_bucket(s3_stack: S3Stack) -> None:
    config = s3_stack.config
    answers = s3_stack.query(
        *(f"show tables in {s}" for s in DELTA_SCHEMAS), *(f"show views in {s}" for s in DELTA_SCHEMAS)
    )
    listed, views = answers[: len(DELTA_SCHEMAS)], answers[len(DELTA_SCHEMAS) :]
    tables = {
        schema: sorted({row[1] for row in rows} - {row[1] for row in seen})  # (namespace, name, ...)
        for schema, rows, seen in zip(DELTA_SCHEMAS, listed, views, strict=True)
    }
    assert {"users", "viewing_sessions", "ratings", "content"} <= set(tables["bronze"])
    assert tables["gold_build"] and tables["ops"], tables
    names = [f"{schema}.{table}" for schema, found in tables.items() for table in found]
    details = s3_stack.query(*(f"describe detail {name}" for name in names))
    locations = {name: rows[0][4] for name, rows in zip(names, details, strict=True)}
    elsewhere = {name: where for name, where in locations.items() if not where.startswith(f"{WAREHOUSE}/")}
    assert not elsewhere, elsewhere
    assert not (config.home / "warehouse").exists()
    listing = objectstore._shell(config, f"fs.ls /buckets/{BUCKET}/warehouse/bronze.db/users/_delta_log")
    assert "00000000000000000000.json" in listing, listing


def test_the_endpoint_serves_gold_and_bronze_time_travels_from_the_bucket(s3_stack: S3Stack) -> None:
    history, gold, checks = s3_stack.query(
        "describe history bronze.viewing_sessions",
        "select count(*) from gold.fct_viewing_sessions",
        "select count(*), count(distinct run_id) from ops.dq_results",
    )
    versions = sorted(row[0] for row in history)
    assert len(versions) >= 2, history
    [[then]], [[now]] = s3_stack.query(
        f"select count(*) from bronze.viewing_sessions version as of {versions[0]}",
        "select count(*) from bronze.viewing_sessions",
    )
    assert then == 0 and now > 19_000
    assert gold[0][0] > 19_000
    assert checks[0][0] > 0 and checks[0][1] >= 1


def test_a_second_run_finds_nothing_to_do(s3_stack: S3Stack) -> None:
    again = s3_stack.cli("pipeline", timeout=PIPELINE_TIMEOUT_SECONDS)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "nothing new in the 4 source tables" in again.stdout


def test_a_second_writer_is_refused_while_one_holds_the_writer_lock(s3_stack: S3Stack) -> None:
    statement = "create table ops.s3_second_writer (a int) using delta"
    with writer_lock(s3_stack.config, "test_object_store", wait=False, notify=lambda _m: None):
        refused = s3_stack.cli("sql", statement)
        read = s3_stack.cli("sql", "select count(*) from bronze.users")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "another" in refused.stderr and "wait for it" in refused.stderr, refused.stderr
    assert read.returncode == 0, read.stderr
    written = s3_stack.cli("sql", statement)
    assert written.returncode == 0, written.stderr
    s3_stack.cli("sql", "drop table ops.s3_second_writer")


def test_a_lakehouse_built_on_local_disk_is_refused_on_the_bucket(services: Config, s3_stack: S3Stack) -> None:
    env = dict(os.environ) | {
        "LAKEHOUSE_SPARK_WAREHOUSE_DIR": WAREHOUSE,
        "LAKEHOUSE_OBJECT_STORE_PORT": s3_stack.env["LAKEHOUSE_OBJECT_STORE_PORT"],
    }
    refused = _cli(env, "up", timeout=COMMAND_TIMEOUT_SECONDS)
    assert refused.returncode != 0, refused.stdout
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "is at file:" in lines[0] and f"spark.warehouse_dir is {WAREHOUSE}" in lines[0], lines[0]
    assert not objectstore.pid_file(services).exists()  # refused before SeaweedFS started


def _probe(s3_stack: S3Stack, home: Path, settings: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """probe_job.py on a path table in the bucket, as a job against this endpoint with `settings`
    (a state directory of its own: no metastore, the stack's conf left alone)."""
    env = {k: v for k, v in s3_stack.env.items() if k != "LAKEHOUSE_OBJECT_STORE_SECRET_KEY"} | {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_OBJECT_STORE_ENDPOINT": s3_stack.config.object_store.url,
        **settings,
    }
    return _run(env, [sys.executable, str(Path(__file__).with_name("probe_job.py")), *args], COMMAND_TIMEOUT_SECONDS)


def _default_chain_probe(s3_stack: S3Stack, home: Path, secret: str) -> subprocess.CompletedProcess:
    """``credentials: default`` with the keys only in the AWS SDK's environment variables."""
    settings = {
        "LAKEHOUSE_OBJECT_STORE_CREDENTIALS": "default",
        "AWS_ACCESS_KEY_ID": s3_stack.config.object_store.access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    return _probe(s3_stack, home, settings, f"s3a://{BUCKET}/probes/default-chain", "12")


def test_the_default_credential_chain_reaches_the_bucket_with_no_key_in_the_config(
    s3_stack: S3Stack, tmp_path: Path
) -> None:
    done = _default_chain_probe(s3_stack, tmp_path / "home", s3_stack.config.object_store.secret_key)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "rows 12" in done.stdout
    conf = tmp_path / "home" / "spark-conf"
    assert "DefaultCredentialsProvider" in (conf / "spark-defaults.conf").read_text()
    assert "fs.s3a.secret.key" not in (conf / "hive-site.xml").read_text()
    # The chain's keys are the ones used: a wrong secret in the environment is refused by the store.
    wrong = _default_chain_probe(s3_stack, tmp_path / "wrong", "not-the-secret")
    assert wrong.returncode != 0, wrong.stdout[-2000:]
    assert "403" in wrong.stderr or "SignatureDoesNotMatch" in wrong.stderr, wrong.stderr[-3000:]


def test_a_file_past_the_multipart_threshold_is_uploaded_in_parts_and_read_back(
    s3_stack: S3Stack, tmp_path: Path
) -> None:
    # The S3A client uploads a file past fs.s3a.multipart.threshold (128 MB by default: a large
    # bronze file) in parts; lowered here to S3's smallest part, 5 MB, for a ~40 MB file.
    keys = {"LAKEHOUSE_OBJECT_STORE_SECRET_KEY": s3_stack.config.object_store.secret_key}
    done = _probe(s3_stack, tmp_path / "home", keys, f"s3a://{BUCKET}/probes/multipart", "10000", "5")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "rows 10000" in done.stdout
    lines = [line.split() for line in done.stdout.splitlines()]
    [size] = [int(line[2]) for line in lines if line[0] == "file"]
    assert size > 4 * 5 * 1024 * 1024, done.stdout  # at least four parts
    [completed] = [line[1] for line in lines if line[0] == "multipart"]
    assert completed.isdigit() and int(completed) >= 1, done.stdout


def test_down_stops_seaweedfs_and_keeps_the_bucket(s3_stack: S3Stack) -> None:
    down = s3_stack.cli("down")
    assert down.returncode == 0 and "objectstore" in down.stdout, down.stdout + down.stderr
    assert not objectstore.pid_file(s3_stack.config).exists()
    assert any(objectstore.data_dir(s3_stack.config).iterdir())
