"""A Dagster run of the code location (lakehouse/orchestration) on the e2e stack, as a user
starts one (``dagster job execute``), and what its instance recorded."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from e2e_stack import Stack
from lakehouse_testing import skip_unless_ci

from lakehouse.config import PROJECT_ROOT


@dataclass
class DagsterRun:
    output: str
    status: str  # SUCCESS, FAILURE
    steps: set[str]  # the steps that started
    materialized: dict[str, dict]  # asset key ("gold/fct_viewing_sessions") -> metadata values
    checks: dict[str, bool]  # "bronze/users:quality_gate" -> passed
    dagster_run_id: str
    tags: dict[str, str]


def run_job(stack: Stack, home: Path, job: str = "lakehouse_pipeline") -> DagsterRun:
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.exists():
        skip_unless_ci("the dagster extra is not installed (make dagster-extra)")
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run(
        [str(dagster), "job", "execute", "-m", "lakehouse.orchestration.definitions", "-j", job],
        env={**stack.env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=PROJECT_ROOT,
        check=False,
    )
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    record = instance.get_run_records()[0]  # newest first
    run_id = record.dagster_run.run_id
    events = [e.dagster_event for e in instance.all_logs(run_id) if e.dagster_event is not None]
    materialized = {
        e.asset_key.to_user_string(): {
            k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()
        }
        for e in events
        if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    }
    evaluations = [e.event_specific_data for e in events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    checks = {f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed for c in evaluations}
    steps = {e.step_key for e in events if e.event_type == DagsterEventType.STEP_START}
    instance.dispose()
    tags = dict(record.dagster_run.tags)
    return DagsterRun(
        done.stdout + done.stderr, record.dagster_run.status.value, steps, materialized, checks, run_id, tags
    )
