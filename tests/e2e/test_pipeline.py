"""`lakehouse pipeline` end to end at tiny scale, in a stack of its own started from nothing.

The module's first run is what a new user sees: an empty state directory, `lakehouse pipeline`
starts the services, generates and loads the tiny scale, extracts, validates, builds silver
and gold with dbt and maintains bronze. Then a failing gate, and BI-style clients on gold. The
stack is stopped at the end of the module.

Each expensive path runs once in the suite, here or in a cheaper place: the next day's
incremental pipeline is in tests/integration/test_dbt.py (on the session's stack, where its
silver and gold are checked anyway); the run lock (a second pipeline fails fast, a killed run's
lock is taken over, --wait queues) is in tests/unit/test_pipeline_steps.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.sql_client import run_query

pytestmark = pytest.mark.e2e

GOLD_FACT = "gold.fct_viewing_sessions"
GOLD_TABLES = ("fct_viewing_sessions", "fct_ratings", "dim_users", "dim_content", "dim_date", "mart_daily_kpis")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The e2e stack: its environment, its config, and the CLI run in it."""

    def __init__(self, home: Path, cache_dir: Path) -> None:
        self.env = dict(os.environ)
        self.env.update(
            {
                "LAKEHOUSE_HOME": str(home),
                "LAKEHOUSE_CACHE_DIR": str(cache_dir),
                "LAKEHOUSE_POSTGRES_PORT": str(_free_port()),
                "LAKEHOUSE_MONGODB_PORT": str(_free_port()),
                "LAKEHOUSE_THRIFT_PORT": str(_free_port()),
            }
        )
        self.config = load_config(env=self.env)

    def run(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=PROJECT_ROOT,
            check=False,
        )

    def pipeline(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        return self.run("pipeline", "--scale", "tiny", *args, timeout=timeout)

    def query(self, sql: str) -> list[tuple]:
        return run_query(self.config, sql).rows


@pytest.fixture(scope="module")
def stack(config: Config) -> Iterator[Stack]:
    home = config.home.parent / f"{config.home.name}-e2e"
    subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "down"],
        env={**os.environ, "LAKEHOUSE_HOME": str(home)},
        capture_output=True,
        check=False,
    )
    if home.exists():
        import shutil

        shutil.rmtree(home)
    e2e = Stack(home, config.cache_dir)
    try:
        yield e2e
    finally:
        e2e.run("down", timeout=300)


def _run_id(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("run "))


def _audit(stack: Stack, run_id: str) -> list[tuple]:
    return stack.query(f"select step, source_table, status, rows_read from ops.pipeline_runs where run_id = '{run_id}'")


def _gold_version(stack: Stack) -> int:
    return max(row[0] for row in stack.query(f"describe history {GOLD_FACT}"))


@pytest.fixture(scope="module")
def first_run(stack: Stack) -> str:
    result = stack.pipeline()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


def test_pipeline_from_empty_state_fills_gold_and_audits_every_step(stack: Stack, first_run: str) -> None:
    assert "generated and loaded the tiny scale" in first_run
    run_id = _run_id(first_run)
    audit = _audit(stack, run_id)
    steps = {row[0] for row in audit}
    assert {"up", "sources", "extract", "validate", "transform", "maintain", "pipeline"} <= steps
    assert all(row[2] == "succeeded" for row in audit), audit
    tables = sorted(row[1] for row in audit if row[0] == "extract" and row[1] is not None)
    assert tables == ["content", "ratings", "users", "viewing_sessions"]
    # One row per step for the whole step too (no source table), and one for the run.
    assert sorted(row[0] for row in audit if row[1] is None) == sorted(
        ["up", "sources", "extract", "validate", "transform", "maintain", "pipeline"]
    )
    for table in GOLD_TABLES:
        assert stack.query(f"select count(*) from gold.{table}")[0][0] > 0, table
    # The summary names the endpoint and where the docs are.
    assert f"{stack.config.thrift.jdbc_url}/gold" in first_run
    assert "Data Docs:" in first_run and "dbt docs:" in first_run
    # Maintain set the retention policy on bronze.
    properties = dict(stack.query("show tblproperties bronze.viewing_sessions"))
    assert properties["delta.deletedFileRetentionDuration"] == "interval 168 hours"


def test_failing_gate_stops_before_transform_and_keeps_gold(stack: Stack, first_run: str) -> None:
    version_before = _gold_version(stack)
    dsn = stack.config.postgres.dsn()
    with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
        # A critical defect far above any tolerance: a third of all sessions negative, changed
        # after the watermark so the next extract reads them.
        cur.execute(
            "update viewing_sessions set watch_seconds = -60, "
            "updated_at = (select max(updated_at) from viewing_sessions) + interval '1 minute' "
            "where session_id % 3 = 0"
        )
    try:
        result = stack.pipeline("--from", "extract")
        assert result.returncode == 1, result.stdout[-6000:]
        assert "quality gate failed" in result.stdout
        assert "watch_seconds" in result.stdout  # the failed expectation is named
        assert _gold_version(stack) == version_before
        audit = _audit(stack, _run_id(result.stdout))
        assert ("transform", None, "skipped", None) in audit
        assert ("maintain", None, "skipped", None) in audit
        assert ("validate", None, "failed", None) in audit
        assert ("pipeline", None, "failed", None) in audit
        failed_table = next(row for row in audit if row[0] == "validate" and row[1] == "viewing_sessions")
        assert failed_table[2] == "failed" and failed_table[3] > 1000
    finally:
        # Repair the source so the later tests see clean data again.
        with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "update viewing_sessions set watch_seconds = 60, updated_at = updated_at + interval '1 minute' "
                "where watch_seconds = -60"
            )


def test_eight_concurrent_clients_query_gold(stack: Stack, first_run: str) -> None:
    errors: list[str] = []
    counts: list[int] = []

    def client(number: int) -> None:
        try:
            counts.append(stack.query(f"select count(*) + {number} - {number} from {GOLD_FACT}")[0][0])
        except Exception as exc:  # any failure of any client fails the test
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    assert len(counts) == 8 and len(set(counts)) == 1


def test_gold_column_metadata_is_visible_to_sqlalchemy_and_beeline(
    stack: Stack, first_run: str, tmp_path: Path
) -> None:
    from sqlalchemy import create_engine, inspect

    from lakehouse.spark import beeline_path, spark_env

    # PyHive's get_table_names reads the first column of SHOW TABLES, which on Spark is the
    # schema: list the tables with SQL, then ask the inspector (as Superset does) per table.
    tables = sorted(row[1] for row in stack.query("show tables in gold"))
    assert set(GOLD_TABLES) <= set(tables)
    thrift = stack.config.thrift
    engine = create_engine(f"hive://tester@{thrift.host}:{thrift.port}/gold")
    try:
        inspector = inspect(engine)
        for table in tables:
            assert inspector.get_columns(table, schema="gold"), table
    finally:
        engine.dispose()
    script = tmp_path / "columns.sql"
    script.write_text("!columns fct_viewing_sessions\n")
    beeline = subprocess.run(
        [
            str(beeline_path()),
            "-u",
            f"{thrift.jdbc_url}/gold",
            "-n",
            "tester",
            "--outputformat=csv2",
            "-f",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=spark_env(stack.config),
        check=False,
    )
    assert beeline.returncode == 0, beeline.stderr[-2000:]
    assert "watch_seconds" in beeline.stdout


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert readme.index("make pipeline") < readme.index("## What runs where")
    assert "make test" in readme
    assert "make test" in ci
    assert os.access(PROJECT_ROOT / ".ci" / "run", os.X_OK)
