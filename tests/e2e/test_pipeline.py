"""`lakehouse pipeline` end to end at tiny scale, in a stack of its own started from nothing.

The first run (``first_run`` in tests/e2e/conftest.py) is what a new user sees: an empty state
directory, `lakehouse pipeline` starts the services, generates and loads the tiny scale,
extracts, validates, builds silver and gold with dbt and maintains bronze. Then a failing gate
and BI-style clients on gold.

Each expensive path runs once in the suite, here or in a cheaper place: the first run's silver
and gold numbers, the next day's incremental pipeline (the second transform on this server) and
a full refresh are in tests/e2e/test_dbt.py, on this stack; the run lock (a second pipeline
fails fast, a killed run's lock is taken over, --wait queues) is in
tests/unit/test_pipeline_steps.py; the whole Dagster asset graph run in process, with gold equal
to the CLI's build, is in tests/integration/test_orchestration.py. Here Dagster is run as a user
runs it: `dagster job execute` blocked by the failing gate, and the webserver.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from dagster_run import run_job
from e2e_stack import Stack
from lakehouse_testing import free_port, skip_unless_ci

from lakehouse.config import PROJECT_ROOT
from lakehouse.profiling import read_profile

pytestmark = pytest.mark.e2e

GOLD_FACT = "gold.fct_viewing_sessions"
SOURCE_TABLES = ("users", "viewing_sessions", "ratings", "content")
GOLD_TABLES = ("fct_viewing_sessions", "fct_ratings", "dim_users", "dim_content", "dim_date", "mart_daily_kpis")


def _run_id(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("run "))


def _audit(stack: Stack, run_id: str) -> list[tuple]:
    return stack.query(f"select step, source_table, status, rows_read from ops.pipeline_runs where run_id = '{run_id}'")


def _validate_cli_stores_what_it_prints(stack: Stack, batch_id: str, broken: int) -> None:
    """`lakehouse validate --batch-id` (spark-submit) on the failed batch: exit 1, and
    ops.dq_results holds exactly the failures it printed."""
    result = stack.run("validate", "--batch-id", batch_id, "--run-id", "e2e-cli", timeout=600)
    output = result.stdout + result.stderr  # spark-submit merges the driver's stderr into stdout
    assert result.returncode == 1, output[-4000:]
    assert "validate: error: quality gate failed" in output
    docs = next(line for line in result.stdout.splitlines() if line.startswith("data docs: "))
    assert Path(docs.removeprefix("data docs: ")).is_file()
    printed = result.stdout.split("critical failures:\n")[1].split("\nwarnings:")[0].split("\nbatches:")[0]
    stored = stack.query(
        "select table_name, batch_id, expectation, `column`, unexpected_count from ops.dq_results "
        "where run_id = 'e2e-cli' and severity = 'critical' and not success"
    )
    assert len(stored) == len(printed.splitlines()), printed
    for table, batch, expectation, column, _count in stored:
        assert batch == batch_id
        named = f"bronze.{table}.{column} " if column else f"bronze.{table} "
        assert any(named in line and expectation in line for line in printed.splitlines()), (named, printed)
    # The batch's broken rows, counted in bronze itself (a duplicated or quarantined source row
    # lands once or not at all, so this is not the UPDATE's row count).
    [(negative,)] = stack.query(
        f"select count(*) from bronze.viewing_sessions where _batch_id = '{batch_id}' and watch_seconds < 0"
    )
    assert 0 < negative <= broken
    assert ("viewing_sessions", batch_id, "expect_column_values_to_be_between", "watch_seconds", negative) in stored


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
    # dbt built and tested in the build schemas; what BI tools read was published from there,
    # each table a view pinned to the Delta version its tests passed on.
    published = stack.published()
    assert {f"gold.{table}" for table in GOLD_TABLES} <= set(published)
    for relation in GOLD_TABLES:
        assert re.search(rf"from gold_build\.{relation} version as of \d+\s*$", published[f"gold.{relation}"]), relation
    assert "published" in first_run and "tables and" in first_run
    # The summary names the endpoint and where the docs are.
    assert f"{stack.config.thrift.jdbc_url}/gold" in first_run
    assert "Data Docs:" in first_run and "dbt docs:" in first_run
    # Maintain set the retention policy on bronze.
    properties = dict(stack.query("show tblproperties bronze.viewing_sessions"))
    assert properties["delta.deletedFileRetentionDuration"] == "interval 168 hours"


def test_the_first_run_says_where_its_time_went(stack: Stack, first_run: str) -> None:
    """`--profile` prints it; ops.pipeline_runs keeps it; `lakehouse profile RUN_ID` shows it again."""
    run_id = _run_id(first_run)
    assert f"profile of run {run_id}" in first_run
    profile = {(row["step"], row["table"]): row["profile"] for row in read_profile(stack.config, run_id)}
    # extract and validate in one Spark application (lakehouse/pipeline/ingest.py), each step
    # with its own part of it.
    assert profile[("pipeline", None)] == {"spark_applications": 1}
    extract, validate = profile[("extract", None)], profile[("validate", None)]
    assert extract["spark_applications"] == 1
    assert 0 < extract["jvm_start_s"] < extract["application_s"], extract
    assert validate["spark_applications"] == 0 and validate["in_application_of"] == "extract", validate
    assert validate["application_s"] > 0 and "jvm_start_s" not in validate, validate
    for step in ("extract", "validate"):
        assert profile[(step, None)]["phases"], (step, profile[(step, None)])
        for table in SOURCE_TABLES:
            assert profile[(step, table)]["spark_jobs"] > 0, (step, table)
            assert profile[(step, table)]["spark_job_s"] > 0, (step, table)
    for table in SOURCE_TABLES:
        assert profile[("extract", table)]["delta_commits"] >= 1, table
        assert "bronze commit" in profile[("extract", table)]["phases"], table
    transform = profile[("transform", None)]
    groups = transform["dbt_groups"]
    assert groups["model"]["nodes"] > 10 and groups["snapshot"]["nodes"] == 1 and groups["test"]["nodes"] > 20
    assert "unit_test" not in groups  # CI runs them (tests/e2e/test_dbt.py), not each build
    assert len(transform["dbt_nodes"]) == sum(group["nodes"] for group in groups.values())
    assert {"gate check", "dbt", "publish"} <= set(transform["phases"])
    shown = stack.run("profile", run_id, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"profile of run {run_id}" in shown.stdout and "slowest dbt nodes of transform:" in shown.stdout
    assert stack.run("profile", "no-such-run", timeout=120).returncode == 1


@pytest.mark.timeout(900)  # a pipeline to the failed gate, the CLI gate and two refusals (about 200 s in CI)
def test_failing_gate_stops_before_transform_and_keeps_gold(stack: Stack, first_run: str, tmp_path: Path) -> None:
    """A failed gate stops the run, and `transform` (alone or `--only transform`) refuses after it;
    under Dagster it is a blocking check that stops everything downstream."""
    published = stack.published()
    dsn = stack.config.postgres.dsn()
    with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
        # A critical defect far above any tolerance: a third of all sessions negative, changed
        # after the watermark so the next extract reads them.
        cur.execute(
            "update viewing_sessions set watch_seconds = -60, "
            "updated_at = (select max(updated_at) from viewing_sessions) + interval '1 minute' "
            "where session_id % 3 = 0"
        )
        broken = cur.rowcount
    try:
        result = stack.pipeline("--from", "extract")
        assert result.returncode == 1, result.stdout[-6000:]
        assert "quality gate failed" in result.stdout
        assert "watch_seconds" in result.stdout  # the failed expectation is named
        assert stack.published() == published
        audit = _audit(stack, _run_id(result.stdout))
        assert ("transform", None, "skipped", None) in audit
        assert ("maintain", None, "skipped", None) in audit
        assert ("validate", None, "failed", None) in audit
        assert ("pipeline", None, "failed", None) in audit
        failed_table = next(row for row in audit if row[0] == "validate" and row[1] == "viewing_sessions")
        assert failed_table[2] == "failed" and failed_table[3] > 1000
        [(batch_id,)] = stack.query(
            f"select batch_id from ops.pipeline_runs where run_id = '{_run_id(result.stdout)}' "
            "and step = 'validate' and source_table = 'viewing_sessions'"
        )
        _validate_cli_stores_what_it_prints(stack, batch_id, broken)
        # What skips the gate cannot publish the failed rows either: dbt does not start.
        transform = stack.run("transform", timeout=300)
        assert transform.returncode == 3, transform.stdout[-3000:] + transform.stderr[-3000:]
        refusal = "transform: refused: bronze.viewing_sessions holds"
        assert transform.stderr.strip().startswith(refusal), transform.stderr[-2000:]
        only = stack.pipeline("--only", "transform")
        assert only.returncode == 1, only.stdout[-3000:]
        assert refusal in only.stdout + only.stderr and "transform refused" in only.stdout
        assert stack.published() == published
        # The scheduler's next poll, nothing fixed: the gate would fail again, and says so without Spark.
        again = stack.pipeline("--from", "extract")
        assert again.returncode == 1, again.stdout[-3000:]
        assert f"gate still failed (run {_run_id(result.stdout)})" in again.stdout
        assert "nothing new in the 4 source tables" in again.stdout
        [(applications,)] = stack.query(
            "select get_json_object(profile, '$.spark_applications') from ops.pipeline_runs "
            f"where run_id = '{_run_id(again.stdout)}' and step = 'pipeline'"
        )
        assert applications == "0"
        # Dagster's run of the same state: the gate's verdict is a failed blocking check on
        # bronze.viewing_sessions, and neither dbt nor publish starts.
        blocked = run_job(stack, tmp_path / "dagster")
        assert blocked.status == "FAILURE", blocked.output[-6000:]
        assert blocked.checks["bronze/viewing_sessions:quality_gate"] is False, blocked.checks
        assert blocked.checks["bronze/users:quality_gate"] is True, blocked.checks
        assert "extract_and_validate" in blocked.steps and not blocked.steps & {"dbt_build", "publish"}
        assert not [key for key in blocked.materialized if key.startswith(("silver", "gold"))]
        assert stack.published() == published
        alerts = [
            json.loads(line) for line in (stack.config.home / "reports" / "alerts.jsonl").read_text().splitlines()
        ]
        assert {(a["run_id"], a["step"]) for a in alerts} == {(blocked.dagster_run_id, "extract_and_validate")}
        assert "quality_gate" in alerts[0]["message"], alerts
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

    from lakehouse.runtime.distribution import beeline_path
    from lakehouse.spark import spark_env

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


def test_dagster_ui_shows_the_graph_and_stops_with_lakehouse_down(stack: Stack, tmp_path: Path) -> None:
    """`lakehouse dagster up` (what `make orchestrator` runs): webserver and daemon on 127.0.0.1
    with their state under the state directory, the asset graph loaded, the schedule and the
    sensor there and stopped; `lakehouse down` stops them. In a state directory of its own: the
    code location loads with no service running, and the e2e stack keeps its services."""
    home = tmp_path / "home"
    port = str(free_port())
    env = {**stack.env, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_ORCHESTRATOR_PORT": port}
    try:
        up = stack.run("dagster", "up", timeout=300, env=env)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert f"Dagster UI: http://127.0.0.1:{port}" in up.stdout
        assert "enabled: false" in (home / "dagster" / "dagster.yaml").read_text()  # telemetry
        query = (
            '{"query": "{ assetNodes { assetKey { path } } repositoriesOrError { ... on RepositoryConnection '
            '{ nodes { schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } }"}'
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql", data=query.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            data = json.load(response)["data"]
        keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
        assert {
            "sources/postgres/users",
            "bronze/users",
            "gold_build/fct_viewing_sessions",
            "gold/mart_daily_kpis",
        } <= keys
        [repository] = data["repositoriesOrError"]["nodes"]
        schedules = [(s["name"], s["scheduleState"]["status"]) for s in repository["schedules"]]
        sensors = [(s["name"], s["sensorState"]["status"]) for s in repository["sensors"]]
        assert schedules == [("lakehouse_daily", "STOPPED")] and sensors == [("lakehouse_sources_changed", "STOPPED")]
        # The lineage page in headless Chromium (docs/dagster-asset-graph.png is one of these).
        chromium = shutil.which("chromium")
        if chromium is None:
            skip_unless_ci("Chromium is not installed (make browser)")
        picture = stack.config.home / "reports" / "dagster-asset-graph.png"
        picture.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run(
            [
                chromium,
                *("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"),
                *("--window-size=1600,1000", "--virtual-time-budget=20000", f"--screenshot={picture}"),
                f"http://127.0.0.1:{port}/asset-groups",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert shot.returncode == 0 and picture.stat().st_size > 20_000, shot.stderr[-2000:]
        down = stack.run("down", env=env)
        assert down.returncode == 0 and "stopped: dagster" in down.stdout, down.stdout
        status = stack.run("dagster", "status", env=env)
        assert "dagster: stopped" in status.stdout, status.stdout
    finally:
        stack.run("dagster", "down", env=env)
