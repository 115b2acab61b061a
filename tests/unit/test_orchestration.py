"""The Dagster code location (lakehouse/orchestration), loaded with no service running.

What these tests pin down: the asset graph mirrors the data (sources -> bronze -> the dbt
build relations -> the published silver and gold), the gate is a blocking check on every bronze
table, every dbt test is a check of its model, the definitions come from a manifest that
``dbt parse`` wrote without a connection (once per project), and the pure mappings from the
lakehouse's audit rows and gate verdicts to Dagster's results. A run against real services is
in tests/e2e/test_pipeline.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.bronze.contracts import CONTRACTS
from lakehouse.config import Config, ConfigError, load_config
from lakehouse.modeling import publish
from lakehouse.orchestration import automation, bronze, location, run, transform
from lakehouse.orchestration import manifest as dbt_manifest


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    # Ports nobody listens on: loading must not need a service.
    home = tmp_path_factory.mktemp("dagster-home")
    return load_config(env={"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_THRIFT_PORT": "1", "LAKEHOUSE_POSTGRES_PORT": "1"})


@pytest.fixture(scope="module")
def defs(config: Config) -> dg.Definitions:
    return location.build_definitions(config)


@pytest.fixture(scope="module")
def graph(defs: dg.Definitions):
    return defs.resolve_asset_graph()


def _key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(list(parts))


def test_the_graph_runs_sources_bronze_build_published(config: Config, graph) -> None:
    manifest = dbt_manifest.load(dbt_manifest.manifest_path(config))
    for contract in CONTRACTS.values():
        bronze = _key("bronze", contract.source_name)
        assert graph.get(bronze).parent_keys == {_key("sources", contract.source_system, contract.source_name)}
    # Every model and snapshot is an asset keyed by the relation it builds, and is published.
    nodes = dbt_manifest.published_nodes(manifest)
    assert len(nodes) == 24, [n["name"] for n in nodes]
    for node in nodes:
        built = _key(node["schema"], node["name"])
        published = _key(node["schema"].removesuffix(publish.BUILD_SCHEMA_SUFFIX), node["name"])
        assert graph.get(published).parent_keys == {built}
    # The staging models read bronze: the dbt sources are the bronze assets, not new ones.
    assert graph.get(_key("silver_build", "stg_postgres__viewing_sessions")).parent_keys == {
        _key("bronze", "viewing_sessions")
    }
    assert _key("gold", "fct_viewing_sessions") in graph.get_all_asset_keys()
    assert not [k for k in graph.get_all_asset_keys() if k.path[0] not in ("sources", "bronze") and len(k.path) != 2]


def test_the_gate_blocks_and_every_dbt_test_is_a_check(config: Config, graph) -> None:
    gate = {c for c in graph.asset_check_keys if c.name == bronze.GATE_CHECK}
    assert gate == {dg.AssetCheckKey(_key("bronze", name), bronze.GATE_CHECK) for name in CONTRACTS}
    for check in gate:
        assert graph.get_check_spec(check).blocking, check
    manifest = dbt_manifest.load(dbt_manifest.manifest_path(config))
    tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test" and n.get("attached_node")}
    dbt_checks = {c.name for c in graph.asset_check_keys if c.name != bronze.GATE_CHECK}
    assert tests and tests <= dbt_checks, sorted(tests - dbt_checks)
    assert dg.AssetCheckKey(_key("gold_build", "fct_viewing_sessions"), "fct_viewing_sessions_column_checks") in (
        graph.asset_check_keys
    )


def test_jobs_run_in_one_process_under_one_lock(defs: dg.Definitions) -> None:
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert {location.PIPELINE_JOB, location.MAINTAIN_JOB} <= names
    pipeline = defs.resolve_job_def(location.PIPELINE_JOB)
    assert pipeline.executor_def is dg.in_process_executor  # one LakehouseRun (lock) per run
    steps = {node.name for node in pipeline.graph.nodes}
    assert {"extract_and_validate", "dbt_build", "publish"} <= steps
    assert [n.name for n in defs.resolve_job_def(location.MAINTAIN_JOB).graph.nodes] == ["maintain"]


def test_the_manifest_is_parsed_once_per_project(config: Config, defs: dg.Definitions) -> None:
    path = dbt_manifest.manifest_path(config)
    assert path.parent.name == publish.project_fingerprint()
    written = path.stat().st_mtime_ns
    location.build_definitions(config)  # a second load (webserver and daemon) reads the same file
    assert path.stat().st_mtime_ns == written
    assert not list(path.parent.parent.glob("*.parsing-*"))


def test_a_failed_parse_says_so_in_one_line(config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)})
    monkeypatch.setattr(dbt_manifest, "parse_command", lambda: ["false"])
    with pytest.raises(dbt_manifest.ManifestError, match=r"^dbt parse of .*/dbt failed: exit code 1 \(log: "):
        dbt_manifest.manifest_path(broken)


def test_the_project_run_id_has_the_audits_shape_and_the_dagster_run_id() -> None:
    started = dt.datetime(2026, 12, 7, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    run_id = run.project_run_id("9e52638e-1490-430c-bf2c-ba5071ba9df7", started)
    assert run_id == "20261207T090506Z-9e52638e"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", run_id)


def test_gate_verdicts_become_check_results() -> None:
    contracts = list(CONTRACTS.values())
    verdicts = {"users": ("passed", 3, 401), "viewing_sessions": ("failed", 5, 6000)}
    failed = {"viewing_sessions": ["watch_seconds: expect_column_values_to_be_between"]}
    results = {r.asset_key.path[-1]: r for r in bronze.gate_check_results(contracts, verdicts, failed, "R1")}
    assert set(results) == set(CONTRACTS)
    assert results["users"].passed and results["users"].metadata["bronze_version"].value == 3
    sessions = results["viewing_sessions"]
    assert not sessions.passed and sessions.check_name == bronze.GATE_CHECK
    assert sessions.metadata["failed_expectations"].value == failed["viewing_sessions"]
    assert sessions.metadata[run.RUN_ID_KEY].value == "R1"
    assert results["ratings"].passed and results["ratings"].metadata["verdict"].value == "none yet"


def test_every_bronze_table_is_materialised_with_its_delta_version_as_data_version() -> None:
    """Dagster skips a step whose upstream output was skipped: the dbt build must run when any
    table changed, so every table is reported, unchanged ones with the same data version."""
    contracts = list(CONTRACTS.values())
    rows = {
        "users": {
            "rows_read": 10,
            "rows_written": 10,
            "rows_quarantined": 0,
            "seconds": 9.6283,
            "status": "succeeded",
            "profile": json.dumps({"phases": {"bronze commit": 8.13}, "spark_jobs": 26}),
        },
        "content": {"rows_read": 3, "rows_written": 0, "rows_quarantined": 3, "status": "succeeded"},
    }
    versions = {"users": 7, "content": 2, "ratings": 4, "viewing_sessions": 9}
    done = {m.asset_key.path[-1]: m for m in bronze.bronze_materializations(contracts, rows, versions, "R2")}
    assert set(done) == set(CONTRACTS)
    assert done["users"].metadata["delta_version"] == 7 and done["users"].metadata["rows_written"] == 10
    assert done["users"].data_version == dg.DataVersion("7")
    assert done["users"].metadata["extract_seconds"] == 9.63
    assert done["users"].metadata["profile"].value == {"phases": {"bronze commit": 8.13}, "spark_jobs": 26}
    assert done["content"].metadata["rows_quarantined"] == 3 and done["content"].metadata[run.RUN_ID_KEY] == "R2"
    assert done["ratings"].metadata["rows_written"] == 0 and done["ratings"].data_version == dg.DataVersion("4")


def test_published_views_say_which_build_version_they_pin() -> None:
    nodes = [
        {"unique_id": "model.lakehouse.fct", "schema": "gold_build", "name": "fct"},
        {"unique_id": "model.lakehouse.stg", "schema": "silver_build", "name": "stg"},
        {"unique_id": "model.lakehouse.skipped", "schema": "gold_build", "name": "skipped"},
    ]
    publication = publish.Publication(1, 1, 0.5, {"model.lakehouse.fct": 12})
    built = {"model.lakehouse.fct", "model.lakehouse.stg"}
    done = {
        m.asset_key.to_user_string(): m.metadata
        for m in transform.published_materializations(nodes, built, publication, "R3")
    }
    assert done == {"gold/fct": {run.RUN_ID_KEY: "R3", "delta_version": 12}, "silver/stg": {run.RUN_ID_KEY: "R3"}}


def test_the_pipelines_lines_go_to_dagsters_log(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-orchestration")
    writer = run.LogWriter(log)
    with caplog.at_level(logging.INFO, logger="test-orchestration"):
        writer.write("==> extract\n  extract users: read 3")
        writer.write(", merged 3\n\n")
        writer.write("tail without newline")
        writer.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "==> extract",
        "  extract users: read 3, merged 3",
        "tail without newline",
    ]
    assert not writer.isatty()


def test_the_dbt_environment_leaves_the_paths_to_dagster_dbt(config: Config) -> None:
    env = dbt_manifest.environment_without_paths(config)
    assert "DBT_TARGET_PATH" not in env and "DBT_LOG_PATH" not in env
    assert env["DBT_SPARK_PORT"] == "1" and env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "false"
    assert json.dumps(env)  # strings only


def test_the_schedule_and_the_sensor_ship_stopped_and_follow_the_settings(config: Config) -> None:
    config = load_config(
        env={
            "LAKEHOUSE_HOME": str(config.home),  # its manifest is parsed already
            "LAKEHOUSE_ORCHESTRATOR_SCHEDULE_CRON": "30 5 * * 1-5",
            "LAKEHOUSE_ORCHESTRATOR_TIMEZONE": "Europe/Berlin",
            "LAKEHOUSE_ORCHESTRATOR_SENSOR_INTERVAL_SECONDS": "120",
        }
    )
    defs = location.build_definitions(config)
    [schedule] = defs.schedules
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 5 * * 1-5", "Europe/Berlin")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.job_name == location.PIPELINE_JOB
    [sensor] = defs.sensors
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.minimum_interval_seconds == 120 and sensor.job_name == location.PIPELINE_JOB


def test_a_bad_time_zone_or_cron_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^orchestrator.timezone: 'Mars/Base' is not an IANA time zone$"):
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_ORCHESTRATOR_TIMEZONE": "Mars/Base"})
    with pytest.raises(ConfigError, match=r"^orchestrator.schedule_cron: 'daily' is not a five-field cron"):
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_ORCHESTRATOR_SCHEDULE_CRON": "daily"})


def test_the_sensor_skips_with_one_line_when_the_services_are_down(
    defs: dg.Definitions, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(config.home))
    monkeypatch.setenv("LAKEHOUSE_THRIFT_PORT", "1")
    monkeypatch.setenv("LAKEHOUSE_POSTGRES_PORT", "1")
    [sensor] = defs.sensors
    with dg.DagsterInstance.ephemeral() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert not result.run_requests
    assert result.skip_message.startswith("cannot ask the lakehouse: "), result.skip_message
    assert "\n" not in result.skip_message


def test_a_failure_is_recorded_and_the_alert_command_gets_it(tmp_path: Path) -> None:
    out = tmp_path / "alert.txt"
    config = load_config(
        env={
            "LAKEHOUSE_HOME": str(tmp_path),
            "LAKEHOUSE_ORCHESTRATOR_ALERT_COMMAND": f'printf "%s|%s|%s" "$LAKEHOUSE_ALERT_JOB" '
            f'"$LAKEHOUSE_ALERT_STEP" "$LAKEHOUSE_ALERT_MESSAGE" > {out}',
        }
    )
    path = automation.record_failure(config, "lakehouse_pipeline", "r-1", "dbt_build", "dbt build failed (x)")
    assert path == tmp_path / "reports" / automation.ALERTS_FILE
    [line] = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["job"] == "lakehouse_pipeline" and line["step"] == "dbt_build" and line["run_id"] == "r-1"
    assert out.read_text() == "lakehouse_pipeline|dbt_build|dbt build failed (x)"


def test_both_jobs_alert_on_failure(defs: dg.Definitions) -> None:
    for name in (location.PIPELINE_JOB, location.MAINTAIN_JOB):
        assert automation.alert_on_failure in defs.resolve_job_def(name).hook_defs, name
