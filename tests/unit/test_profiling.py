"""Where a run's time went (lakehouse/profiling.py), and nothing waits forever (lakehouse/processes.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time

import pytest
from lakehouse_testing import alarm

from lakehouse import audit, processes, profiling
from lakehouse.config import load_config
from lakehouse.pipeline import context, steps

RUN_RESULTS = {
    "elapsed_time": 42.5,
    "results": [
        {"unique_id": "model.lakehouse.stg_postgres__users", "status": "success", "execution_time": 3.0},
        {"unique_id": "model.lakehouse.fct_viewing_sessions", "status": "success", "execution_time": 12.25},
        {"unique_id": "snapshot.lakehouse.snap_users", "status": "success", "execution_time": 4.0},
        {"unique_id": "test.lakehouse.unique_dim_users_user_sk.1a2b", "status": "pass", "execution_time": 1.5},
        {"unique_id": "test.lakehouse.not_null_fct_x_id.3c4d", "status": "fail", "execution_time": 0.5},
        {"unique_id": "unit_test.lakehouse.fct_x.checks_y", "status": "pass", "execution_time": 2.0},
        {"unique_id": "seed.lakehouse.plans", "status": "success", "execution_time": None},
    ],
}


def test_spark_jobs_counts_only_the_jobs_of_its_block_and_thread(spark) -> None:
    spark.range(10).count()  # before the block: not counted
    with profiling.spark_jobs(spark, "unit-profile") as work:
        spark.range(100).count()
        spark.range(100).selectExpr("sum(id)").collect()
    spark.range(10).count()  # after it: not counted either
    assert work.jobs >= 2
    assert work.tasks >= work.jobs
    assert 0 < work.seconds < 60
    assert spark.sparkContext.getLocalProperty(profiling.JOB_GROUP_PROPERTY) is None
    again = profiling._completed_jobs(spark, "unit-profile")
    assert (again.jobs, again.tasks) == (work.jobs, work.tasks)


def test_dbt_nodes_are_grouped_by_resource_type_with_the_slowest_first() -> None:
    profile = profiling.dbt_profile(RUN_RESULTS)
    groups = profile["dbt_groups"]
    assert list(groups) == ["seed", "model", "snapshot", "test", "unit_test"]
    assert groups["model"] == {"nodes": 2, "seconds": 15.25, "failed": 0}
    assert groups["test"] == {"nodes": 2, "seconds": 2.0, "failed": 1}
    assert groups["seed"] == {"nodes": 1, "seconds": 0.0, "failed": 0}
    assert list(profile["dbt_slowest"])[:2] == ["model.lakehouse.fct_viewing_sessions", "snapshot.lakehouse.snap_users"]
    assert profile["dbt_nodes"]["unit_test.lakehouse.fct_x.checks_y"] == 2.0
    assert profile["dbt_elapsed_s"] == 42.5


def test_a_jobs_announcements_give_the_jvm_start_and_are_not_output() -> None:
    assert profiling.parse_line("extract users: read 10") is None
    assert profiling.parse_line(f"{profiling.PROFILE_MARK} not json") is None
    ready = profiling.parse_line(f"{profiling.PROFILE_MARK} {json.dumps({'session_ready_at': 1012.5})}")
    shared = profiling.parse_line(f'{profiling.PROFILE_MARK} {{"delta_commits": 2}}')
    profile = profiling.application_profile({**ready, **shared}, submitted_at=1000.0, ended_at=1030.0)
    assert profile == {"spark_applications": 1, "application_s": 30.0, "jvm_start_s": 12.5, "delta_commits": 2}


def test_the_profile_table_shows_each_tables_spark_work_and_the_slowest_dbt_nodes() -> None:
    rows = profiling.rows_as_dicts(
        [
            ("extract", None, "succeeded", 40.0, json.dumps({"spark_applications": 1, "jvm_start_s": 14.2})),
            (
                "extract",
                "users",
                "succeeded",
                8.5,
                json.dumps({"spark_jobs": 5, "spark_job_s": 6.1, "delta_commits": 1}),
            ),
            ("transform", None, "succeeded", 90.0, json.dumps(profiling.dbt_profile(RUN_RESULTS))),
            ("pipeline", None, "succeeded", 140.0, "{not json"),
        ]
    )
    assert rows[3]["profile"] == {}
    text = profiling.format_profile("r1", rows)
    users = next(line for line in text.splitlines() if "users" in line)
    assert users.split()[:7] == ["extract", "users", "succeeded", "8", "-", "5", "6.1"]
    assert "14.2" in next(line for line in text.splitlines() if line.startswith("extract  "))
    assert "model 2 in 15.2 s" in text and "test 2 in 2.0 s" in text
    assert "12.2 s  model.lakehouse.fct_viewing_sessions" in text


def test_step_rows_are_inserted_with_named_columns_and_the_profile_as_json() -> None:
    started = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    record = audit.StepRecord("r1", "pipeline", started_at=started, profile={"spark_applications": 0})
    sql = audit.insert_sql([record.finish("succeeded")])
    columns = sql.split("(", 1)[1].split(")", 1)[0].split(", ")
    assert columns == [field.name for field in audit.RUNS_SCHEMA.fields]
    assert columns[-1] == audit.PROFILE_COLUMN
    assert sql.rstrip().endswith("""'{"spark_applications": 0}')""")
    no_profile = audit.insert_sql([audit.StepRecord("r1", "up", started_at=started).finish("succeeded")])
    assert no_profile.rstrip().endswith(", null)")


def test_a_command_past_its_deadline_is_stopped_with_all_its_children(tmp_path) -> None:
    child_pid = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; echo started; wait"
    lines: list[str] = []
    started = time.monotonic()
    finished = processes.stream(["bash", "-c", script], on_line=lines.append, timeout=1, grace=5)
    assert finished.timed_out
    assert time.monotonic() - started < 10
    assert lines == ["started"]
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}") or "Z" in _state(pid), "the grandchild outlived the deadline"


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().split(") ", 1)[1][:1]
    except OSError:
        return "Z"


def test_a_command_that_ends_in_time_gives_its_exit_code_and_output() -> None:
    result = processes.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
        timeout=30,
        what="probe",
        setting="x",
    )
    assert result.returncode == 3
    assert sorted(result.stdout.split()) == ["err", "out"]
    with pytest.raises(processes.CommandTimeout, match=r"^probe did not finish within 1 s \(some\.setting\)"):
        processes.run(["sleep", "30"], timeout=1, what="probe", setting="some.setting")


def test_a_spark_job_past_pipeline_job_timeout_fails_the_step_in_one_line(monkeypatch, tmp_path) -> None:
    import lakehouse.spark

    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_PIPELINE_JOB_TIMEOUT_SECONDS": "1"})
    monkeypatch.setattr(lakehouse.spark, "spark_submit_command", lambda *_a, **_k: ["sleep", "30"])
    monkeypatch.setattr(lakehouse.spark, "write_spark_conf", lambda _config: tmp_path)
    ctx = context.Context(config, context.Options(quiet=True), "r1")
    result = context.StepResult("extract")
    started = time.monotonic()
    with pytest.raises(context.PipelineError) as failure:
        steps.step_extract(ctx, result)
    assert time.monotonic() - started < processes.STOP_GRACE_SECONDS
    message = str(failure.value)
    assert len(message.splitlines()) == 1
    assert "jobs/extract.py did not finish within 1 s (pipeline.job_timeout_seconds)" in message
    assert ctx.spark_applications == 1
    assert result.profile["spark_applications"] == 1 and "jvm_start_s" not in result.profile


def test_a_block_past_its_alarm_fails_naming_it_after_dumping_every_stack(capfd) -> None:
    remaining, _interval = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's; put back below
    try:
        with (
            pytest.raises(pytest.fail.Exception, match=r"^the probe did not finish within 0.5 s \(where\)$"),
            alarm("the probe", 0.5, "where"),
        ):
            time.sleep(10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, remaining)
    assert "most recent call first" in capfd.readouterr().err


def test_the_bench_table_has_the_no_change_run_its_spark_applications_and_the_load() -> None:
    from lakehouse.bench import format_report

    def run(seconds: float, extract: float) -> dict:
        return {"seconds": seconds, "steps": {"extract": {"seconds": extract, "rows_read": 10}}}

    report = {
        "scale": "tiny",
        "cpus": 2,
        "full": run(300.0, 70.0),
        "incremental": run(250.0, 50.0),
        "no_change": {**run(60.0, 45.0), "spark_applications": 1},
        "ratios": {"incremental_vs_full": 0.833},
        "load_average_at_start": (0.5, 0.4, 0.3),
        "load_average_at_end": (1.5, 1.0, 0.6),
    }
    lines = format_report(report).splitlines()
    extract = next(line for line in lines if line.startswith("extract"))
    assert extract.split()[:4] == ["extract", "70.0", "50.0", "45.0"]
    assert next(line for line in lines if line.startswith("total")).split() == ["total", "300.0", "250.0", "60.0"]
    assert "Spark applications started by the no-change run: 1" in lines
    assert "load average (1, 5, 15 min) at start (0.5, 0.4, 0.3), at end (1.5, 1.0, 0.6)" in lines


def test_a_jvms_peak_resident_memory_is_announced_from_its_vmhwm(spark, capsys) -> None:
    assert profiling.peak_rss_mb(os.getpid()) > 1  # this Python process
    assert profiling.peak_rss_mb(None) is None
    assert profiling.peak_rss_mb(2**22 + 12345) is None  # above Linux's pid_max: no such process
    profiling.announce_jvm_peak(spark)
    announced = [profiling.parse_line(line) for line in capsys.readouterr().out.splitlines()]
    peaks = [values[profiling.JVM_PEAK_KEY] for values in announced if values and profiling.JVM_PEAK_KEY in values]
    assert len(peaks) == 1 and peaks[0] > 100  # a Spark JVM holds more than 100 MiB


def test_a_large_bench_is_the_full_run_only_with_each_steps_peak_memory() -> None:
    from lakehouse.bench import format_report, peak_memory

    profile = [
        {"step": "extract", "table": None, "profile": {profiling.JVM_PEAK_KEY: 2048.5}},
        {"step": "extract", "table": "users", "profile": {profiling.JVM_PEAK_KEY: 1.0}},  # a table's row: not a step's
        {"step": "transform", "table": None, "profile": {profiling.THRIFT_PEAK_KEY: 3072.0}},
        {"step": "sources", "table": None, "profile": {}},
    ]
    peaks = peak_memory(profile)
    assert peaks == {"extract": {"jvm": 2048.5}, "transform": {"thrift": 3072.0}}
    report = {
        "scale": "large",
        "cpus": 2,
        "full": {"seconds": 900.0, "steps": {"extract": {"seconds": 400.0, "rows_read": 10}}, "peak_rss_mb": peaks},
        "ratios": {"incremental_vs_full": None},
    }
    lines = format_report(report).splitlines()
    assert next(line for line in lines if line.startswith("total")).split() == ["total", "900.0", "0.0", "0.0"]
    assert "at large scale the full run only" in lines
    assert "peak resident memory, full extract: jvm 2,048 MiB" in lines
    assert "peak resident memory, full transform: thrift 3,072 MiB" in lines


def test_the_steps_in_the_thrift_server_record_its_peak_memory(monkeypatch, tmp_path) -> None:
    from lakehouse.pipeline import run
    from lakehouse.services import thrift

    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)})
    ctx = context.Context(config, context.Options(quiet=True), "r1")
    monkeypatch.setitem(run.STEP_FUNCTIONS, "transform", lambda _ctx, _result: None)
    monkeypatch.setitem(run.STEP_FUNCTIONS, "sources", lambda _ctx, _result: None)
    transform, sources = context.StepResult("transform"), context.StepResult("sources")
    run.run_step(ctx, transform)  # no server running: nothing recorded
    assert profiling.THRIFT_PEAK_KEY not in transform.profile
    thrift.pid_file(config).parent.mkdir(parents=True, exist_ok=True)
    thrift.pid_file(config).write_text(str(os.getpid()))  # a live process stands in for the server
    run.run_step(ctx, transform)
    run.run_step(ctx, sources)
    assert transform.profile[profiling.THRIFT_PEAK_KEY] == pytest.approx(profiling.peak_rss_mb(os.getpid()), rel=0.5)
    assert profiling.THRIFT_PEAK_KEY not in sources.profile
