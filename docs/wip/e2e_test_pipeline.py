# UNVERIFIED DRAFT of tests/e2e/test_pipeline.py (issue 7). Not collected by pytest on purpose:
# its first run did not finish in the session that wrote it (maintain step took 25+ min). Move it
# back to tests/e2e/ once `lakehouse pipeline` is fast enough at tiny scale and it passes.
"""`lakehouse pipeline` end to end at tiny scale, from empty sources, on the live services."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
from pymongo import MongoClient

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.sql_client import run_query

GOLD_FACT = "gold.fct_viewing_sessions"


def _pipeline(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "pipeline", "--scale", "tiny", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        check=False,
    )


def _empty_everything(config: Config, spark) -> None:
    """Empty sources and lakehouse: what a fresh machine has after `lakehouse up`."""
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("drop table if exists users, viewing_sessions, ratings, load_log, sim_clock cascade")
    with MongoClient(config.mongodb.connection_uri, serverSelectionTimeoutMS=5000) as mongo:
        for name in mongo[config.mongodb.database].list_collection_names():
            mongo[config.mongodb.database].drop_collection(name)
    for schema in ("gold", "silver", "bronze", "ops"):
        spark.sql(f"drop database if exists {schema} cascade")


def _audit(config: Config, run_id: str) -> list[tuple]:
    return run_query(
        config,
        f"select step, source_table, status, rows_read from ops.pipeline_runs where run_id = '{run_id}'",
    ).rows


def _run_id(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("run "))


def _gold_version(config: Config) -> int:
    return max(row[0] for row in run_query(config, f"describe history {GOLD_FACT}").rows)


@pytest.fixture(scope="module")
def first_run(services: Config, spark) -> str:
    _empty_everything(services, spark)
    result = _pipeline()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "generated and loaded the tiny scale" in result.stdout
    return result.stdout


def test_pipeline_from_empty_state_fills_gold_and_audits_every_step(services: Config, first_run: str) -> None:
    run_id = _run_id(first_run)
    audit = _audit(services, run_id)
    steps = {row[0] for row in audit}
    assert {"up", "sources", "extract", "validate", "transform", "maintain", "pipeline"} <= steps
    assert all(row[2] == "succeeded" for row in audit), audit
    extract_tables = sorted(row[1] for row in audit if row[0] == "extract")
    assert extract_tables == ["content", "ratings", "users", "viewing_sessions"]
    for table in ("fct_viewing_sessions", "dim_users", "dim_content", "mart_daily_kpis"):
        count = run_query(services, f"select count(*) from gold.{table}").rows[0][0]
        assert count > 0, table
    assert f"{services.thrift.jdbc_url}/gold" in first_run


def test_incremental_run_processes_only_new_data(services: Config, first_run: str, cli) -> None:
    sessions_before = run_query(services, f"select count(*), max(started_at) from {GOLD_FACT}").rows[0]
    simulated = cli("simulate", "--days", "1")
    assert simulated.returncode == 0, simulated.stderr
    result = _pipeline()
    assert result.returncode == 0, result.stdout[-4000:]
    audit = _audit(services, _run_id(result.stdout))
    sessions_read = next(row[3] for row in audit if row[0] == "extract" and row[1] == "viewing_sessions")
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from viewing_sessions")
        total = cur.fetchone()[0]
    assert 0 < sessions_read < total * 0.1
    sessions_after = run_query(services, f"select count(*), max(started_at) from {GOLD_FACT}").rows[0]
    assert sessions_after[0] > sessions_before[0]
    assert sessions_after[1] > sessions_before[1]


def test_failing_gate_stops_before_transform_and_keeps_gold(services: Config, first_run: str) -> None:
    version_before = _gold_version(services)
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        # A critical defect well above any tolerance: a third of recent sessions negative.
        cur.execute(
            "update viewing_sessions set watch_seconds = -60, updated_at = updated_at + interval '1 hour' "
            "where session_id % 3 = 0 and session_id is not null"
        )
    result = _pipeline("--from", "extract")
    assert result.returncode != 0
    assert "quality gate failed" in result.stdout
    assert _gold_version(services) == version_before
    audit = _audit(services, _run_id(result.stdout))
    assert ("transform", None, "skipped", None) in audit
    # Repair the source so later runs (and modules) see clean data again.
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "update viewing_sessions set watch_seconds = 0, updated_at = updated_at + interval '1 hour' "
            "where watch_seconds = -60"
        )


def test_second_pipeline_fails_fast_with_the_lock_message(services: Config, first_run: str) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "pipeline", "--only", "extract"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=PROJECT_ROOT,
    )
    try:
        lock = services.run_dir / "pipeline.lock"

        def first_holds_the_lock() -> bool:
            return lock.exists() and lock.read_text().strip() == str(first.pid)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not first_holds_the_lock():
            time.sleep(0.2)
        assert first_holds_the_lock()
        started = time.monotonic()
        second = _pipeline("--only", "up", timeout=60)
        assert time.monotonic() - started < 20
        assert second.returncode == 1
        assert f"another pipeline is running (pid {first.pid})" in second.stdout
    finally:
        first.wait(timeout=900)
    assert first.returncode == 0


def test_stale_lock_of_a_killed_run_is_taken_over(services: Config, first_run: str) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (services.run_dir / "pipeline.lock").write_text(str(dead.pid))
    result = _pipeline("--only", "up", timeout=120)
    assert result.returncode == 0, result.stdout
    assert f"taking over the lock left by an earlier run (pid {dead.pid}" in result.stdout


def test_eight_concurrent_clients_query_gold(services: Config, first_run: str) -> None:
    errors: list[str] = []
    counts: list[int] = []

    def client(number: int) -> None:
        try:
            counts.append(run_query(services, f"select count(*) + {number} - {number} from {GOLD_FACT}").rows[0][0])
        except Exception as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert len(counts) == 8 and len(set(counts)) == 1


def test_gold_column_metadata_is_visible_to_sqlalchemy(services: Config, first_run: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(f"hive://tester@{services.thrift.host}:{services.thrift.port}/gold")
    try:
        inspector = inspect(engine)
        tables = inspector.get_table_names(schema="gold")
        assert "fct_viewing_sessions" in tables
        for table in tables:
            assert inspector.get_columns(table, schema="gold"), table
    finally:
        engine.dispose()


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert readme.index("make pipeline") < readme.index("## What runs where")
    assert "make test" in readme
    assert "make test" in ci
    assert os.access(PROJECT_ROOT / ".ci" / "run", os.X_OK)
