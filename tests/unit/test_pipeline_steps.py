"""The pipeline's run lock, failure classification, step selection and SQL values, without services."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.pipeline import decisions, jobs, steps
from lakehouse.pipeline.context import Context, GateFailed, Options, PipelineError, StepResult, TransientError
from lakehouse.pipeline.lock import LockedError, run_lock
from lakehouse.pipeline.run import STEP_FUNCTIONS, selected_steps
from lakehouse.serving.sql_client import sql_literal

HOLD_LOCK = """
import sys
from lakehouse.config import load_config
from lakehouse.pipeline.lock import run_lock
with run_lock(load_config(), wait=False, notify=print):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "LAKEHOUSE_HOME": str(tmp_path / "home")}


@pytest.fixture
def lock_config(home: dict[str, str]) -> Config:
    return load_config(env=home)


def _holder(env: dict[str, str]) -> subprocess.Popen:
    """Another process that holds the run lock until its standard input closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


def _release(process: subprocess.Popen) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=30)


def test_a_second_pipeline_fails_at_once_naming_the_pid_that_holds_the_lock(home: dict[str, str]) -> None:
    holder = _holder(home)
    try:
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "pipeline", "--only", "up"],
            env=home,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=PROJECT_ROOT,
            check=False,
        )
        assert time.monotonic() - started < 30  # it did not wait, and started nothing
    finally:
        _release(holder)
    assert second.returncode == 1
    assert f"lakehouse pipeline: error: another pipeline is running (pid {holder.pid})" in second.stdout
    assert "--wait" in second.stdout


def test_the_lock_of_a_killed_run_is_taken_over_with_its_pid(lock_config: Config) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = lock_config.run_dir / "pipeline.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(dead.pid))
    messages: list[str] = []
    with run_lock(lock_config, wait=False, notify=messages.append):
        assert lock.read_text() == str(os.getpid())
    assert messages == [f"taking over the lock left by an earlier run (pid {dead.pid}, no longer running)"]
    assert lock.read_text() == ""  # released: the next run takes it without a word


def test_wait_queues_behind_the_running_pipeline(home: dict[str, str], lock_config: Config) -> None:
    holder = _holder(home)
    with (
        pytest.raises(LockedError, match=f"pid {holder.pid}"),
        run_lock(lock_config, wait=False, notify=print),
    ):
        pass
    _release(holder)
    messages: list[str] = []
    with run_lock(lock_config, wait=True, notify=messages.append):
        assert (lock_config.run_dir / "pipeline.lock").read_text() == str(os.getpid())
    assert messages == []  # the holder released the lock itself: nothing to take over


@pytest.mark.parametrize(
    "output",
    [
        "postgres source 127.0.0.1:25432 is unreachable after 3 attempts",
        "psycopg2.OperationalError: Connection refused",
        "could not connect to server",
        "thrift.transport.TTransport.TTransportException: Could not connect to 127.0.0.1:10010",
        "thrift server did not become ready in 180 s",
        "cannot reach the Thrift server at 127.0.0.1:10010",
    ],
)
def test_unreachable_servers_are_transient_failures(output: str) -> None:
    with pytest.raises(TransientError, match=r"^extract failed: "):
        jobs.check_exit(1, f"some progress\n{output}\n", "extract failed")


@pytest.mark.parametrize(
    "output",
    [
        "extract: error: bronze.users batch 1: read 10 rows; 9 valid but Delta merged 8",
        "[TABLE_OR_VIEW_NOT_FOUND] The table or view `bronze.nope` cannot be found",
        "Traceback (most recent call last):\nValueError: bad value",
    ],
)
def test_real_failures_are_not_retried_and_name_the_telling_line(output: str) -> None:
    with pytest.raises(PipelineError) as err:
        jobs.check_exit(1, output, "extract failed")
    assert not isinstance(err.value, TransientError)
    assert str(err.value) == f"extract failed: {jobs.failure_line(output)}"
    assert "\n" not in str(err.value)


def test_a_zero_exit_code_is_success_whatever_the_output_says() -> None:
    jobs.check_exit(0, "WARN something failed, connection refused", "extract failed")


def test_the_failure_line_skips_spark_noise_and_prefers_errors() -> None:
    output = "\n".join(
        [
            "extract: reading users",
            "extract: error: mongodb.content: unreachable",
            "26/12/02 10:00:00 WARN SparkContext: something",
            "\tat org.apache.spark.Something(Something.scala:1)",
            "",
        ]
    )
    assert jobs.failure_line(output) == "extract: error: mongodb.content: unreachable"
    assert jobs.failure_line("just progress\n\n") == "just progress"
    assert jobs.failure_line("") == "no output"


def test_sql_values_are_quoted_and_timestamps_written_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert sql_literal(None) == "null"
    assert sql_literal(42) == "42"
    assert sql_literal(dt.datetime(2026, 1, 1, 13, 0, 0, 5, tzinfo=paris)) == "timestamp'2026-01-01 12:00:00.000005'"
    assert sql_literal("it's") == "'it\\'s'"
    assert sql_literal("C:\\path") == "'C:\\\\path'"
    assert sql_literal("a\\'); drop table x; --") == "'a\\\\\\'); drop table x; --'"


def test_step_selection_by_only_and_from() -> None:
    assert selected_steps(Options()) == list(STEP_FUNCTIONS)
    assert selected_steps(Options(only="validate")) == ["validate"]
    assert selected_steps(Options(from_step="transform")) == ["transform", "maintain"]
    with pytest.raises(ValueError, match=r"--only: unknown step 'nope'; steps are up, sources, extract"):
        selected_steps(Options(only="nope"))
    with pytest.raises(ValueError, match=r"--from: unknown step 'later'"):
        selected_steps(Options(from_step="later"))


def test_a_range_of_steps_ends_at_until() -> None:
    """Dagster's bronze asset runs the steps up to the gate; its transform runs apart."""
    assert selected_steps(Options(until="validate")) == ["up", "sources", "extract", "validate"]
    assert selected_steps(Options(from_step="extract", until="extract")) == ["extract"]
    with pytest.raises(ValueError, match=r"until: 'extract' is not a step at or after 'transform'"):
        selected_steps(Options(from_step="transform", until="extract"))


def test_synthetic_data_goes_only_into_the_local_servers_unless_asked() -> None:
    local = load_config(env={})
    assert steps.generation_refusal(local, Options()) is None
    external = load_config(
        env={"LAKEHOUSE_POSTGRES_URL": "postgresql://app@db.example:5432/streaming", "LAKEHOUSE_POSTGRES_PASSWORD": "x"}
    )
    refusal = steps.generation_refusal(external, Options(scale="tiny"))
    assert refusal is not None and "\n" not in refusal
    assert refusal.startswith("the sources are empty and postgresql://app@db.example:5432/streaming is not the")
    assert refusal.endswith("or pass --generate-sources to fill them with the synthetic tiny scale")
    assert steps.generation_refusal(external, Options(generate_sources=True)) is None


# ------------------------------------------------------------------ the gate, decided without Spark


@pytest.fixture
def validate_run(monkeypatch, lock_config: Config):
    """Run the validate step with a given decision; record whether it started Spark and what it said."""
    submitted: list[str] = []

    def spark_job(ctx, result, job, args):
        submitted.append(job)
        return jobs.JobRun(0, "", False, {})

    monkeypatch.setattr(steps, "spark_job", spark_job)
    monkeypatch.setattr(steps, "audit_counts", lambda ctx, step: (0, None, None))
    monkeypatch.setattr(decisions, "freshness_warnings", lambda config: [])

    def run(decision, options: Options | None = None, config: Config | None = None, failed_run=None, last=None):
        monkeypatch.setattr(decisions, "unvalidated", decision)
        monkeypatch.setattr(decisions, "last_failure", last or (lambda config: (failed_run, [])))
        out = io.StringIO()
        ctx = Context(config or lock_config, options or Options(), "r1", out)
        result = StepResult("validate")
        steps.step_validate(ctx, result)
        return result, submitted, out.getvalue()

    return run


def test_validate_is_skipped_without_spark_when_a_passed_gate_covers_every_row(validate_run) -> None:
    result, submitted, _said = validate_run(lambda config: None)
    assert submitted == []
    assert result.status == "skipped"
    assert result.detail == "no unvalidated batch in the 4 bronze tables"


def test_the_gate_runs_when_bronze_holds_rows_no_passed_gate_covers_or_when_in_doubt(validate_run) -> None:
    from lakehouse.serving.sql_client import QueryError

    def unreachable(config: Config) -> str | None:
        raise QueryError("cannot reach the Thrift server")

    pending = "bronze.users holds 3 row(s) that no passed quality gate covers"
    result, submitted, said = validate_run(lambda config: pending)
    assert result.status == "pending" and submitted == ["validate_bronze.py"]
    assert f"the gate runs: {pending}" in said
    result, submitted, said = validate_run(unreachable)
    assert submitted == ["validate_bronze.py"] * 2
    assert "the gate runs: cannot tell without Spark: cannot reach the Thrift server" in said


def test_a_gate_that_failed_on_unchanged_inputs_fails_again_without_spark(validate_run) -> None:
    pending = "bronze.users holds 3 row(s) that no passed quality gate covers"
    with pytest.raises(GateFailed) as failed:  # the gate's no, not a fault (Dagster's check reads it)
        validate_run(lambda config: pending, failed_run="run-7")
    assert str(failed.value).startswith("gate still failed (run run-7): no bronze or quarantine commit")
    assert "--no-skip" in str(failed.value)
    _result, submitted, _said = validate_run(lambda config: pending, Options(no_skip=True), failed_run="run-7")
    assert submitted == ["validate_bronze.py"]  # --no-skip runs it anyway


def test_a_gate_that_failed_runs_again_and_says_what_changed_or_what_could_not_be_asked(validate_run) -> None:
    from lakehouse.serving.sql_client import QueryError

    pending = "bronze.viewing_sessions holds 6,728 row(s) that no passed quality gate covers"
    changed = ["bronze.users version 4 -> 5", "the rules (quality settings, suites, gate code or the UTC day)"]
    _result, submitted, said = validate_run(lambda config: pending, last=lambda config: ("run-7", changed))
    assert submitted == ["validate_bronze.py"]
    assert (
        f"the gate runs: {pending}; the last gate (run run-7) failed, and since then: "
        "bronze.users version 4 -> 5, the rules (quality settings, suites, gate code or the UTC day)"
    ) in said

    timeout = "the last gate's inputs got no answer within 60 s (pipeline.decision_timeout_seconds)"
    for rounds, failure in enumerate((TimeoutError(timeout), QueryError("cannot reach the Thrift server")), 2):

        def no_answer(config: Config, failure: Exception = failure) -> tuple:
            raise failure

        _result, submitted, said = validate_run(lambda config: pending, last=no_answer)
        assert submitted == ["validate_bronze.py"] * rounds  # when in doubt, the gate runs: never a skip
        assert f"the gate runs: {pending}; whether the last failed gate's inputs changed is unknown: {failure}" in said


def test_the_last_gate_counts_as_still_failed_only_when_every_input_is_unchanged() -> None:
    from lakehouse.quality.verdicts import failed_run_changes, gate_inputs, still_failed_run

    inputs = gate_inputs({"users": 3, "content": 5}, 9, "rules-a")
    failed = [("passed", "run-7", inputs), ("failed", "run-7", inputs)]
    assert still_failed_run(failed, gate_inputs({"content": 5, "users": 3}, 9, "rules-a")) == "run-7"
    for changed in (
        gate_inputs({"users": 4, "content": 5}, 9, "rules-a"),  # a bronze commit since
        gate_inputs({"users": 3, "content": 5}, 10, "rules-a"),  # a quarantine commit since
        gate_inputs({"users": 3, "content": 5}, 9, "rules-b"),  # other settings, suites or day
    ):
        assert still_failed_run(failed, changed) is None
    assert still_failed_run([("passed", "run-7", inputs)], inputs) is None
    assert still_failed_run([("failed", "run-6", None)], inputs) is None  # stored before inputs were kept
    assert still_failed_run([], inputs) is None
    # What changed is named, for the "the gate runs" line.
    assert failed_run_changes(failed, gate_inputs({"users": 4, "content": 5}, 10, "rules-b")) == (
        "run-7",
        [
            "bronze.users version 3 -> 4",
            "the quarantine version 9 -> 10",
            "the rules (quality settings, suites, gate code or the UTC day)",
        ],
    )
    assert failed_run_changes(failed, inputs) == ("run-7", [])
    assert failed_run_changes([("failed", "run-6", None)], inputs) == ("run-6", ["its inputs were not stored"])
    assert failed_run_changes([("passed", "run-7", inputs)], inputs) == (None, [])


def test_the_rules_fingerprint_follows_the_quality_settings_and_the_day(lock_config: Config) -> None:
    import dataclasses

    from lakehouse.quality.verdicts import rules_fingerprint

    day = dt.date(2026, 12, 5)
    stricter = dataclasses.replace(lock_config, quality=dataclasses.replace(lock_config.quality, max_batch_rows=5))
    assert rules_fingerprint(lock_config, day) == rules_fingerprint(lock_config, day)
    assert rules_fingerprint(stricter, day) != rules_fingerprint(lock_config, day)
    assert rules_fingerprint(lock_config, day + dt.timedelta(days=1)) != rules_fingerprint(lock_config, day)


def test_no_skip_runs_the_gate_without_asking(validate_run) -> None:
    def must_not_ask(config: Config) -> str | None:
        raise AssertionError("asked")

    _result, submitted, _said = validate_run(must_not_ask, Options(no_skip=True))
    assert submitted == ["validate_bronze.py"]


def test_a_decision_past_its_timeout_runs_the_gate(validate_run, home: dict[str, str]) -> None:
    quick = load_config(env={**home, "LAKEHOUSE_PIPELINE_DECISION_TIMEOUT_SECONDS": "1"})

    def hangs(config: Config) -> str | None:
        time.sleep(30)
        return None

    started = time.monotonic()
    _result, submitted, said = validate_run(hangs, config=quick)
    assert submitted == ["validate_bronze.py"] and time.monotonic() - started < 10
    assert "got no answer within 1 s (pipeline.decision_timeout_seconds)" in said


def test_a_skipped_gate_still_warns_when_bronze_is_stale(validate_run, monkeypatch) -> None:
    stale = "bronze.users: newest row ingested 40 h ago, over quality.freshness_hours (36 h)"
    monkeypatch.setattr(decisions, "freshness_warnings", lambda config: [stale])
    result, submitted, said = validate_run(lambda config: None)
    assert submitted == [] and result.status == "skipped"
    assert result.detail.endswith("; 1 warning(s)")
    assert f"warning: {stale}" in said


# ------------------------------------------------------------------ the extract, decided without Spark


@pytest.fixture
def extract_run(monkeypatch, lock_config: Config):
    """Run the extract step with given pending tables; record the spark-submit arguments and output."""
    from lakehouse.bronze import fingerprints

    submitted: list[list[str]] = []

    def spark_job(ctx, result, job, args):
        submitted.append(args)
        return jobs.JobRun(0, "", False, {})

    monkeypatch.setattr(steps, "spark_job", spark_job)
    monkeypatch.setattr(steps, "audit_counts", lambda ctx, step: (5, 5, 0))

    def run(pending, options: Options | None = None):
        monkeypatch.setattr(fingerprints, "pending_tables", pending)
        out = io.StringIO()
        ctx = Context(lock_config, options or Options(), "r1", out, steps=("extract",))
        result = StepResult("extract")
        steps.step_extract(ctx, result)
        return result, submitted, out.getvalue(), ctx

    return run


def test_the_extract_is_skipped_without_spark_when_no_source_table_changed(extract_run) -> None:
    result, submitted, _said, ctx = extract_run(lambda config, contracts: {})
    assert submitted == [] and result.status == "skipped"
    assert result.detail == "nothing new in the 4 source tables"
    assert ctx.changed is False


def test_only_the_changed_tables_are_extracted_each_with_its_reason(extract_run) -> None:
    why = {"ratings": "its window changed since the last extract (1 row(s) more)", "content": "never extracted"}
    result, submitted, said, ctx = extract_run(lambda config, contracts: why)
    assert submitted == [["--run-id", "r1", "--table", "ratings", "--table", "content"]]
    assert "extract ratings: its window changed since the last extract (1 row(s) more)" in said
    assert result.status == "pending" and ctx.changed


def test_the_extract_runs_for_every_table_when_the_decision_cannot_answer(extract_run) -> None:
    def unreachable(config, contracts):
        raise OSError("connection refused by 127.0.0.1:5432")

    _result, submitted, said, _ctx = extract_run(unreachable)
    assert submitted == [["--run-id", "r1"]]
    assert "extract runs: cannot tell without Spark whether the sources changed: connection refused" in said


def test_no_skip_and_full_refresh_extract_without_asking(extract_run) -> None:
    def must_not_ask(config, contracts):
        raise AssertionError("asked")

    extract_run(must_not_ask, Options(no_skip=True))
    _result, submitted, _said, _ctx = extract_run(must_not_ask, Options(full_refresh=True))
    assert submitted == [["--run-id", "r1"], ["--run-id", "r1", "--full-refresh"]]


def test_a_fingerprint_names_why_the_extract_must_run_before_reading_any_source(lock_config: Config) -> None:
    """Each reason that needs no source query; those that do are in tests/integration/test_extract_decision.py."""
    from lakehouse.bronze import fingerprints as fp
    from lakehouse.bronze.contracts import CONTRACTS

    users = CONTRACTS["users"]
    now = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)
    mark = fp.micros(now - dt.timedelta(hours=1))
    window = fp.micros(now - dt.timedelta(hours=1, minutes=lock_config.bronze.lookback_minutes))
    stored = fp.Fingerprint(window, 3, mark, "12345", fp.micros(now), fp.extract_code())
    assert fp.Fingerprint.from_json(stored.to_json()) == stored
    assert fp.Fingerprint.from_json("not json") is None and fp.Fingerprint.from_json(None) is None
    assert fp.reason_to_extract(lock_config, users, None, now) == "never extracted"
    assert fp.reason_to_extract(lock_config, users, fp.Stored(mark, None), now).startswith("no fingerprint")
    moved = fp.Stored(mark + 1, stored)  # a watermark one microsecond later: another window
    assert fp.reason_to_extract(lock_config, users, moved, now).startswith("its window moved")
    older = fp.Stored(mark, fp.Fingerprint(window, 3, mark, "12345", fp.micros(now), "other-code"))
    assert fp.reason_to_extract(lock_config, users, older, now) == "the extract's code changed since its last run"


def test_a_text_updated_at_counts_as_a_stamp_when_spark_would_read_it_as_one() -> None:
    from lakehouse.bronze.fingerprints import _stamp_us, micros

    instant = dt.datetime(2026, 12, 5, 18, 0, tzinfo=dt.UTC)
    assert _stamp_us(instant) == _stamp_us(instant.replace(tzinfo=None)) == micros(instant)
    assert _stamp_us("2026-12-05T18:00:00Z") == _stamp_us("2026-12-05T19:00:00+01:00") == micros(instant)
    assert _stamp_us("2026-12-05 18:00:00") == micros(instant)  # no offset: UTC, as the Spark session
    assert _stamp_us("yesterday") is None and _stamp_us(None) is None and _stamp_us(20261205) is None


# ------------------------------------------------------------------ extract and validate in one application

INGEST_OUTPUT = """
import json, sys, time
mark = "lakehouse-profile:"
print(mark, json.dumps({"session_ready_at": time.time()}))
print("extract users: read 5, merged 5")
print(mark, json.dumps({"phases": {"audit commit": 1.0}}))
print(mark, json.dumps({"step_begins": "validate", "at": time.time()}))
print("validate bronze.users: 5 rows, 0 critical failure(s)")
print(mark, json.dumps({"phases": {"data docs": 0.5}, "gate": "passed", "gate_detail": "quality gate PASSED"}))
sys.exit(0)
"""


def test_a_job_that_runs_validate_after_extract_gives_each_step_its_output_and_profile(lock_config: Config) -> None:
    out = io.StringIO()
    ctx = Context(lock_config, Options(), "r1", out)
    run = jobs.stream_job(ctx, "extract", [sys.executable, "-c", INGEST_OUTPUT], dict(os.environ), 60)
    assert run.code == 0 and set(run.later) == {"validate"}
    gate = run.later["validate"]
    assert run.announced["phases"] == {"audit commit": 1.0} and "gate" not in run.announced
    assert gate.announced["phases"] == {"data docs": 0.5} and gate.announced["gate"] == "passed"
    assert gate.lines == ["validate bronze.users: 5 rows, 0 critical failure(s)"]
    assert "extract users: read 5, merged 5" in run.output and "extract users" not in gate.output
    assert run.own_ended_at == gate.began_at <= gate.ended_at
    said = out.getvalue()
    assert (
        said.index("extract users")
        < said.index("validate: runs in this Spark application")
        < said.index("validate bronze.users")
    )


def _gate_part(announced: dict, began: float = 100.0, ended: float = 130.0, lines=()) -> jobs.StepPart:
    return jobs.StepPart("validate", began, ended, list(lines), dict(announced))


@pytest.fixture
def ingested(monkeypatch, lock_config: Config):
    """Run the validate step on what the extract's application did of the gate; never a spark-submit."""

    def no_job(*_args):
        raise AssertionError("the validate step started a Spark application of its own")

    monkeypatch.setattr(steps, "spark_job", no_job)
    monkeypatch.setattr(steps, "audit_counts", lambda ctx, step: (42, None, None))

    def run(code: int, part: jobs.StepPart):
        ctx = Context(lock_config, Options(), "r1", io.StringIO(), steps=("extract", "validate"))
        ctx.gate_part = (code, part)
        result = StepResult("validate")
        try:
            steps.step_validate(ctx, result)
        finally:
            assert ctx.gate_part is None  # taken: a retry runs the gate on its own
        return result

    return run


def test_the_gate_done_in_the_extracts_application_ends_the_validate_step_as_its_own_would(ingested) -> None:
    passed = ingested(0, _gate_part({"gate": "passed", "gate_detail": "quality gate PASSED", "delta_commits": 3}))
    assert passed.status == "pending" and passed.rows_read == 42  # run_step marks it succeeded
    assert passed.span == (100.0, 130.0)
    assert passed.profile == {
        "spark_applications": 0,
        "in_application_of": "extract",
        "application_s": 30.0,
        "delta_commits": 3,
    }
    skipped = ingested(0, _gate_part({"gate": "skipped", "warnings": ["bronze.users: newest row 40 h ago"]}))
    assert skipped.status == "skipped" and skipped.detail == "no unvalidated batch in the 4 bronze tables; 1 warning(s)"
    with pytest.raises(GateFailed, match=r"^quality gate failed: transform skipped"):
        ingested(3, _gate_part({"gate": "failed", "gate_detail": "quality gate FAILED"}))
    with pytest.raises(GateFailed, match=r"^gate still failed \(run run-7\)"):
        ingested(
            3, _gate_part({"gate": "still_failed", "gate_detail": "gate still failed (run run-7): nothing changed"})
        )
    missing = r"^validate could not run: validate: error: bronze\.users is missing$"
    with pytest.raises(PipelineError, match=missing) as error:
        ingested(4, _gate_part({"gate": "error"}, lines=["validate: error: bronze.users is missing"]))
    assert not isinstance(error.value, GateFailed)
    with pytest.raises(TransientError, match=r"^validate could not run: .*Connection refused"):
        ingested(4, _gate_part({}, lines=["ingest: error: Connection refused by 127.0.0.1:10010"]))


def test_the_extract_runs_the_gate_in_its_application_only_when_validate_follows(
    monkeypatch, lock_config: Config
) -> None:
    from lakehouse.bronze import fingerprints

    submitted: list[tuple[str, list[str]]] = []
    gate = _gate_part({"gate": "passed"}, began=time.time(), ended=time.time() + 1)

    def spark_job(ctx, result, job, args):
        submitted.append((job, args))
        return jobs.JobRun(0, "", False, {}, {"validate": gate} if job == "ingest.py" else {})

    monkeypatch.setattr(steps, "spark_job", spark_job)
    monkeypatch.setattr(steps, "audit_counts", lambda ctx, step: (5, 5, 0))
    monkeypatch.setattr(fingerprints, "pending_tables", lambda config, contracts: {"users": "never extracted"})
    for selected, options in (
        (("extract", "validate", "transform"), Options()),
        (("extract", "validate"), Options(no_skip=True)),
        (("extract",), Options()),
    ):
        ctx = Context(lock_config, options, "r1", io.StringIO(), steps=selected)
        result = StepResult("extract", started_at=dt.datetime.now(dt.UTC))
        steps.step_extract(ctx, result)
        assert (ctx.gate_part is not None) == ("validate" in selected)
        assert (result.span is not None) == ("validate" in selected)
    assert submitted == [
        ("ingest.py", ["--run-id", "r1", "--table", "users"]),
        ("ingest.py", ["--run-id", "r1", "--gate", "always"]),
        ("extract.py", ["--run-id", "r1", "--table", "users"]),
    ]
