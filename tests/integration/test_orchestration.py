"""The Dagster code location (lakehouse/orchestration) run in process on the run's tiny bronze:
the whole asset graph (``execute_in_process`` of lakehouse_pipeline: sources, extract and the
gate, dbt build, publish) materialises every asset and passes every check, the sensor asks the
pipeline's own decision before and after, and gold equals what the CLI's transform (the
``transform`` step of ``lakehouse pipeline``) builds from the same bronze.

The tiny bronze (``tiny_bronze``) was extracted by ``lakehouse extract`` and never validated, so
the Dagster run has the gate to run (one spark-submit) and dbt's first whole build; the CLI then
rebuilds everything with ``lakehouse transform --full-refresh`` and ``lakehouse gold diff``
compares the two row by row. A failing gate under Dagster (a blocking check that stops dbt and
publish) and the webserver are in tests/e2e/test_pipeline.py, as a user runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from lakehouse_testing import skip_unless_ci

from lakehouse.config import Config
from lakehouse.serving.sql_client import run_query

pytestmark = pytest.mark.integration

try:
    import dagster as dg
except ImportError:  # pragma: no cover - the extra is part of `make test`
    dg = None

BRONZE_TABLES = ("users", "viewing_sessions", "ratings", "content")


@dataclass
class InProcessRun:
    success: bool
    dagster_run_id: str
    steps: set[str]  # the steps that started
    materialized: dict[str, dict]  # asset key ("gold/fct_viewing_sessions") -> metadata values
    checks: dict[str, bool]  # "bronze/users:quality_gate" -> passed
    tags: dict[str, str]
    sensor_before: object
    sensor_after: object


def _sensor_tick(definitions, instance):
    [sensor] = definitions.sensors
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance))


@pytest.fixture(scope="module")
def dagster_run(services: Config, tiny_bronze) -> InProcessRun:
    if dg is None:
        skip_unless_ci("the dagster extra is not installed (make dagster-extra)")
    from lakehouse.orchestration.location import PIPELINE_JOB, build_definitions

    definitions = build_definitions(services)
    with dg.DagsterInstance.ephemeral() as instance:
        before = _sensor_tick(definitions, instance)
        result = definitions.resolve_job_def(PIPELINE_JOB).execute_in_process(instance=instance, raise_on_error=False)
        after = _sensor_tick(definitions, instance)
        materialized = {
            event.asset_key.to_user_string(): {
                key: value.value for key, value in event.step_materialization_data.materialization.metadata.items()
            }
            for event in result.get_asset_materialization_events()
        }
        checks = {
            f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed for c in result.get_asset_check_evaluations()
        }
        steps = {event.step_key for event in result.all_events if event.event_type_value == "STEP_START"}
        tags = dict(instance.get_run_by_id(result.run_id).tags)
    return InProcessRun(result.success, result.run_id, steps, materialized, checks, tags, before, after)


def test_the_sensor_asks_for_the_run_the_unvalidated_bronze_needs(dagster_run: InProcessRun) -> None:
    [request] = dagster_run.sensor_before.run_requests
    assert "unvalidated" in request.tags["lakehouse/reason"], request.tags
    assert request.tags["lakehouse/trigger"] == "sensor"


def test_the_whole_graph_materialises_in_process_and_passes_every_check(
    dagster_run: InProcessRun, services: Config
) -> None:
    assert dagster_run.success, dagster_run
    assert {"extract_and_validate", "dbt_build", "publish"} <= dagster_run.steps
    assert len(dagster_run.checks) >= 30 and all(dagster_run.checks.values()), dagster_run.checks
    for table in BRONZE_TABLES:
        assert dagster_run.checks[f"bronze/{table}:quality_gate"], table
        assert dagster_run.materialized[f"bronze/{table}"]["delta_version"] >= 0, table
    for published in ("gold/fct_viewing_sessions", "gold/mart_daily_kpis", "silver/snap_users"):
        assert published in dagster_run.materialized, sorted(dagster_run.materialized)
    assert "gold_build/fct_viewing_sessions" in dagster_run.materialized
    project_run = dagster_run.materialized["bronze/users"]["lakehouse_run_id"]
    assert project_run.endswith("-" + dagster_run.dagster_run_id.replace("-", "")[:8]), project_run
    assert dagster_run.tags["lakehouse/run_id"] == project_run, dagster_run.tags
    audit = run_query(services, f"select step, status from ops.pipeline_runs where run_id = '{project_run}'").rows
    assert ("validate", "succeeded") in audit, audit
    published = run_query(services, f"select count(*) from ops.published_builds where run_id = '{project_run}'")
    [(recorded,)] = published.rows
    assert recorded == 1
    # The sensor's next tick: nothing new, and a passed gate covers bronze (no Spark to say so).
    assert dagster_run.sensor_after.skip_message.startswith("nothing new"), dagster_run.sensor_after


@pytest.mark.timeout(900)  # the CLI's whole --full-refresh build (about 90 s at tiny)
def test_gold_equals_what_the_cli_builds_from_the_same_bronze(dagster_run: InProcessRun, cli) -> None:
    assert dagster_run.success, dagster_run
    saved = cli("gold", "save", "dagster", timeout=300)
    assert saved.returncode == 0, saved.stdout + saved.stderr
    transform = cli("transform", "--full-refresh", "--run-id", "cli-after-dagster", timeout=900)
    assert transform.returncode == 0, (transform.stdout + transform.stderr)[-4000:]
    diff = cli("gold", "diff", "dagster", timeout=300)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    [relations] = [line for line in saved.stdout.splitlines() if line.startswith("gold: saved ")]
    assert int(relations.split()[2]) >= 6, relations
