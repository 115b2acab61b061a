"""lakehouse.modeling.runner without a server: environment, command line, failure reporting, streaming."""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest

from lakehouse.config import Config, ConfigError, load_config
from lakehouse.modeling import publish, runner
from lakehouse.quality import verdicts


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(
        env={
            "LAKEHOUSE_HOME": str(tmp_path / "home"),
            "LAKEHOUSE_THRIFT_HOST": "127.0.0.1",
            "LAKEHOUSE_THRIFT_PORT": "10123",
            "LAKEHOUSE_DBT_USER": "analyst",
            "LAKEHOUSE_DBT_THREADS": "3",
        }
    )


def _results(path: Path, rows: list[tuple[str, str, str | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    results = [{"unique_id": uid, "status": status, "message": message} for uid, status, message in rows]
    path.write_text(json.dumps({"metadata": {}, "results": results}))
    return path


def test_environment_points_the_profile_at_the_configured_server_and_state_dir(config: Config) -> None:
    env = runner.dbt_environment(config, base={"PATH": "/bin"})
    assert env["DBT_SPARK_HOST"] == "127.0.0.1"
    assert env["DBT_SPARK_PORT"] == "10123"
    assert env["DBT_SPARK_USER"] == "analyst"
    assert env["DBT_THREADS"] == "3"
    assert env["DBT_POLL_INTERVAL"] == "1"  # dbt-spark's own default sleeps 5 s per query
    assert env["DBT_PROFILES_DIR"] == str(runner.DBT_PROJECT_DIR)
    assert env["DBT_TARGET_PATH"] == str(config.home / "dbt" / "target")
    assert env["DBT_LOG_PATH"] == str(config.home / "dbt" / "logs")
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert env["PATH"] == "/bin"


def test_dbt_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dbt\.threads"):
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_DBT_THREADS": "0"})
    with pytest.raises(ConfigError, match=r"dbt\.user"):
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_DBT_USER": "a b; drop"})
    with pytest.raises(ConfigError, match=r"dbt\.poll_interval_seconds: must be at least 1"):
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_DBT_POLL_INTERVAL_SECONDS": "0"})


def test_build_command_passes_selection_full_refresh_and_run_id() -> None:
    command = runner.build_command(select="fct_viewing_sessions+ dim_users", full_refresh=True, run_id="r-1")
    assert command[1:3] == ["--no-use-colors", "build"]
    assert command[command.index("--select") + 1 : command.index("--select") + 3] == [
        "fct_viewing_sessions+",
        "dim_users",
    ]
    assert "--full-refresh" in command
    assert json.loads(command[command.index("--vars") + 1]) == {"run_id": "r-1"}
    plain = runner.build_command()
    assert "--select" not in plain and "--full-refresh" not in plain and "--vars" not in plain


def test_builds_leave_the_unit_tests_to_their_own_command() -> None:
    """A build (the pipeline's, or a selection) runs no dbt unit test; `lakehouse transform
    --unit-tests` runs those alone (tests/e2e/test_dbt.py runs it in `make test`)."""
    for command in (runner.build_command(), runner.build_command(select="dim_users+")):
        assert command[command.index("--exclude") + 1] == "resource_type:unit_test"
    unit = runner.unit_test_command()
    assert unit[2] == "test" and unit[unit.index("--select") + 1] == "resource_type:unit_test"
    assert "--exclude" not in unit


def test_run_results_split_failures_and_warnings(tmp_path: Path) -> None:
    path = _results(
        tmp_path / "run_results.json",
        [
            ("model.lakehouse.stg_postgres__users", "success", "OK"),
            ("model.lakehouse.fct_viewing_sessions", "error", "Database Error\n  [PARSE_SYNTAX_ERROR] near 'form'"),
            ("test.lakehouse.unique_dim_users_user_sk.4f2a1b", "fail", "Got 3 results, configured to fail if != 0"),
            ("unit_test.lakehouse.dim_users.builds_windows", "fail", "actual differs from expected"),
            ("test.lakehouse.stg_postgres__users_column_warnings.9a", "warn", "Got 1 result"),
            ("model.lakehouse.mart_daily_kpis", "skipped", None),
        ],
    )
    failed, warned = runner.read_run_results(path)
    assert [(n.resource_type, n.name) for n in failed] == [
        ("model", "fct_viewing_sessions"),
        ("test", "unique_dim_users_user_sk"),
        ("unit_test", "dim_users.builds_windows"),
    ]
    assert failed[0].message == "Database Error [PARSE_SYNTAX_ERROR] near 'form'"
    assert [n.name for n in warned] == ["stg_postgres__users_column_warnings"]


def test_a_failed_or_warning_column_checks_test_names_its_model_and_keeps_its_query(tmp_path: Path) -> None:
    """The runner runs these again to name each failed check (model.column: check, N rows)."""
    path = tmp_path / "run_results.json"
    rows = [
        ("test.lakehouse.dim_users_column_checks.1a", "fail", "select 1"),
        ("test.lakehouse.stg_postgres__users_column_warnings.2b", "warn", "select 2"),
        ("test.lakehouse.dim_date_column_checks.3c", "error", "select 3"),  # broken SQL: nothing to list
        ("test.lakehouse.unique_combination_dim_users_user_id__valid_from.4d", "fail", "select 4"),
    ]
    results = [{"unique_id": u, "status": s, "message": "Got 1 result", "compiled_code": c} for u, s, c in rows]
    path.write_text(json.dumps({"metadata": {}, "results": results}))
    failed, warned = runner.read_run_results(path)
    assert [(n.checked_model, n.compiled_code) for n in failed + warned] == [
        ("dim_users", "select 1"),
        (None, "select 3"),
        (None, "select 4"),
        ("stg_postgres__users", "select 2"),
    ]


def test_report_names_failing_nodes_and_returns_non_zero(config: Config, tmp_path: Path) -> None:
    path = _results(tmp_path / "run_results.json", [("test.lakehouse.not_null_fct_ratings_user_sk.1", "fail", "Got 2")])
    errors = io.StringIO()
    assert runner._report(config, 1, path, errors) == runner.EXIT_FAILURE
    assert "test not_null_fct_ratings_user_sk: Got 2" in errors.getvalue()


def test_report_without_results_points_at_the_server(config: Config, tmp_path: Path) -> None:
    errors = io.StringIO()
    assert runner._report(config, 2, tmp_path / "missing.json", errors) == runner.EXIT_FAILURE
    assert "127.0.0.1:10123" in errors.getvalue()
    assert runner._report(config, 0, tmp_path / "missing.json", io.StringIO()) == runner.EXIT_OK


def _fake_dbt(path: Path, outcomes: dict[str, tuple[int, str, str]]) -> Path:
    """A stand-in for dbt: prints progress, writes run_results.json where dbt would, exits.

    ``outcomes`` maps the dbt subcommand (build, retry) to (exit code, test status, message).
    """
    script = f"""#!{sys.executable}
import json, os, pathlib, sys
outcomes = {json.dumps(outcomes)}
command = next(arg for arg in sys.argv[1:] if not arg.startswith("-"))
code, status, message = outcomes[command]
print(f"{{command}}: 1 of 2 START sql table model gold.dim_users", flush=True)
print("args: " + " ".join(sys.argv[1:]), flush=True)
target = pathlib.Path(os.environ["DBT_TARGET_PATH"])
target.mkdir(parents=True, exist_ok=True)
results = [
    {{"unique_id": "model.lakehouse.dim_users", "status": "success", "message": "OK"}},
    {{"unique_id": "test.lakehouse.unique_dim_users_user_sk.1", "status": status, "message": message}},
]
(target / "run_results.json").write_text(json.dumps({{"results": results}}))
sys.exit(code)
"""
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_run_transform_streams_output_and_reports_failures(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_dbt(tmp_path / "dbt", {"build": (1, "fail", "Got 1 result")})
    monkeypatch.setattr(runner, "dbt_executable", lambda: str(fake))
    stale = _results(
        runner.dbt_target_dir(config) / "run_results.json", [("model.lakehouse.old", "error", "a stale result")]
    )
    output, errors = io.StringIO(), io.StringIO()
    code = runner.run_transform(
        config, select="dim_users", run_id="r-9", output=output, errors=errors, check_gate=False
    )
    assert code == runner.EXIT_FAILURE
    assert "build: 1 of 2 START sql table model gold.dim_users" in output.getvalue()
    assert "--select dim_users" in output.getvalue()
    assert "test unique_dim_users_user_sk: Got 1 result" in errors.getvalue()
    assert "a stale result" not in errors.getvalue()
    assert stale.exists()  # rewritten by this run, not the earlier one
    assert "retry" not in output.getvalue()  # a failing test is not retried
    assert "transform: nothing published: silver and gold keep the last build that passed" in errors.getvalue()


class _Publisher:
    """Stands in for lakehouse.modeling.publish.publish (which needs a Thrift server): records its calls."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []

    def __call__(self, config: Config, target_dir: Path, unique_ids: set[str]) -> publish.Publication:
        assert target_dir == runner.dbt_target_dir(config)
        self.calls.append(set(unique_ids))
        return publish.Publication(tables=len(unique_ids), views=0, seconds=0.5)


def test_run_transform_succeeds_when_dbt_does(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_dbt(tmp_path / "dbt", {"build": (0, "pass", "")})
    monkeypatch.setattr(runner, "dbt_executable", lambda: str(fake))
    publisher = _Publisher()
    monkeypatch.setattr(runner.publish, "publish", publisher)
    output = io.StringIO()
    assert runner.run_transform(config, output=output, errors=io.StringIO(), check_gate=False) == runner.EXIT_OK
    assert publisher.calls == [{"model.lakehouse.dim_users"}]  # what the build built, and only once it passed
    assert "transform: published 1 tables and 0 views in 0.5 s" in output.getvalue()
    assert "transform: done" in output.getvalue()


def test_a_dropped_connection_is_retried_once(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_dbt(
        tmp_path / "dbt",
        {"build": (1, "error", "Database Error TSocket read 0 bytes"), "retry": (0, "pass", "")},
    )
    monkeypatch.setattr(runner, "dbt_executable", lambda: str(fake))
    publisher = _Publisher()
    monkeypatch.setattr(runner.publish, "publish", publisher)
    output, errors = io.StringIO(), io.StringIO()
    assert runner.run_transform(config, output=output, errors=errors, check_gate=False) == runner.EXIT_OK
    assert publisher.calls == [{"model.lakehouse.dim_users"}]
    assert "retrying once" in output.getvalue()
    assert "retry: 1 of 2 START" in output.getvalue()
    assert errors.getvalue() == ""


def test_a_connection_lost_twice_fails(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lost = (1, "error", "Database Error TSocket read 0 bytes")
    fake = _fake_dbt(tmp_path / "dbt", {"build": lost, "retry": lost})
    monkeypatch.setattr(runner, "dbt_executable", lambda: str(fake))
    errors = io.StringIO()
    publisher = _Publisher()
    monkeypatch.setattr(runner.publish, "publish", publisher)
    code = runner.run_transform(config, output=io.StringIO(), errors=errors, check_gate=False)
    assert code == runner.EXIT_FAILURE
    assert "test unique_dim_users_user_sk: Database Error TSocket read 0 bytes" in errors.getvalue()
    assert publisher.calls == []


def test_missing_dbt_is_one_line_not_a_traceback(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> str:
        raise runner.TransformError("dbt is not installed in this environment: run `make setup`")

    monkeypatch.setattr(runner, "dbt_executable", missing)
    errors = io.StringIO()
    code = runner.run_transform(config, output=io.StringIO(), errors=errors, check_gate=False)
    assert code == runner.EXIT_FAILURE
    assert errors.getvalue() == "transform: error: dbt is not installed in this environment: run `make setup`\n"


def test_the_checked_bronze_versions_reach_dbt_as_a_var() -> None:
    command = runner.build_command(run_id="r-1", bronze_versions={"users": 7, "content": 3})
    variables = json.loads(command[command.index("--vars") + 1])
    assert variables == {"run_id": "r-1", "bronze_versions": {"users": 7, "content": 3}}
    assert "--vars" not in runner.build_command()


def test_a_refusal_names_the_table_its_last_verdict_and_the_way_forward() -> None:
    message = runner.refusal_message({"content": 12, "ratings": 3}, {"content": ("failed", "r-7"), "ratings": None})
    assert message.startswith("bronze.content holds 12 row(s) that no passed quality gate covers")
    assert "(last gate verdict: failed, run r-7) (and 1 more table: ratings)" in message
    assert "lakehouse validate" in message and "lakehouse quarantine" in message
    assert "\n" not in message
    first = runner.refusal_message({"users": 1_234}, {"users": None})
    assert "holds 1,234 row(s)" in first and "no gate has validated it yet" in first


def test_pending_rows_are_those_after_the_last_passed_high_water_mark() -> None:
    sql = verdicts.pending_rows_sql("users", "bronze.users", 4, verdicts_exist=True)
    assert sql.startswith("select count(*) from bronze.users version as of 4 where not coalesce(_ingested_at <= (")
    assert "where source_table = 'users' and verdict = 'passed'" in sql
    # Never validated: every row is pending.
    assert verdicts.pending_rows_sql("users", "bronze.users", 0, verdicts_exist=False).endswith("where true")
