"""How the gate reports: failure lines, the summary, warnings subsumed by failed twins, stored rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from expectations.common import CRITICAL, WARNING
from lakehouse.quality.batches import BatchRef
from lakehouse.quality.gate import GateResult, TableRun
from lakehouse.quality.results import DQ_RESULTS_SCHEMA, Outcome, describe, example_keys

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
BETWEEN = "expect_column_values_to_be_between"


def _watch(severity: str, success: bool, mostly: float | None = None) -> Outcome:
    parameters = {"min_value": 0, "max_value": 86400} | ({"mostly": mostly} if mostly else {})
    return Outcome(
        table="viewing_sessions",
        suite="bronze.viewing_sessions.batch",
        batch_id="b1",
        expectation=BETWEEN,
        column="watch_seconds",
        severity=severity,
        success=success,
        observed_value="-60, 90000",
        element_count=1_000,
        unexpected_count=30,
        unexpected_percent=3.0,
        example_keys=("11", "12"),
        key_columns=("session_id",),
        parameters=parameters,
        validated_at=AT,
    )


ROW_COUNT = Outcome(
    table="users",
    suite="bronze.users.batch",
    batch_id="b2",
    expectation="expect_table_row_count_to_be_between",
    column=None,
    severity=CRITICAL,
    success=False,
    observed_value="203",
    parameters={"max_value": 150},
    validated_at=AT,
)
ORPHANS = Outcome(
    table="ratings",
    suite="bronze.ratings.batch",
    batch_id="b3",
    expectation="expect_column_values_to_be_null",
    column="user_id",
    severity=WARNING,
    success=False,
    observed_value="900000001",
    element_count=100,
    unexpected_count=2,
    unexpected_percent=2.0,
    example_keys=("900000001|c000001",),
    key_columns=("user_id", "content_id"),
    parameters={"mostly": 0.99},
    validated_at=AT,
)


def _result(*outcomes: Outcome) -> GateResult:
    runs = {"users": TableRun(BatchRef("users", "b2", "ops.pipeline_runs"), rows=203, quarantined=4)}
    return GateResult("run-1", runs, list(outcomes), Path("/state/reports/data_docs/index.html"), seconds=1.5)


def test_a_failure_line_names_table_column_expectation_count_and_keys() -> None:
    line = describe(_watch(CRITICAL, False, mostly=0.98))
    assert line == (
        "bronze.viewing_sessions.watch_seconds [batch] expect_column_values_to_be_between "
        "(max_value=86400, min_value=0, mostly=0.98): 30 unexpected of 1,000 rows (3.00 %); "
        "values: -60, 90000; example session_id: 11, 12"
    )


def test_aggregate_and_composite_key_lines() -> None:
    assert describe(ROW_COUNT) == (
        "bronze.users [batch] expect_table_row_count_to_be_between (max_value=150): observed 203"
    )
    assert describe(ORPHANS).endswith("example user_id|content_id: 900000001|c000001")


def test_summary_lists_failures_then_warnings_without_the_failed_twin() -> None:
    result = _result(_watch(CRITICAL, False, mostly=0.98), _watch(WARNING, False), ROW_COUNT, ORPHANS)
    assert not result.passed
    assert [o.expectation for o in result.failures] == [BETWEEN, "expect_table_row_count_to_be_between"]
    assert result.warnings == [ORPHANS]
    lines = result.summary().splitlines()
    assert (
        lines[0]
        == "quality gate FAILED: 2 critical expectation(s) failed, 1 warning(s) (run run-1, 4 expectations, 1.5 s)"
    )
    assert lines[1] == "critical failures:"
    assert lines[2] == f"  {describe(result.failures[0])}"
    assert lines[4] == "warnings:"
    assert lines[5] == f"  {describe(ORPHANS)}"
    assert "  bronze.users: batch b2 (from ops.pipeline_runs): 203 rows, 4 quarantined" in lines
    assert lines[-1] == "data docs: /state/reports/data_docs/index.html"


def test_the_summary_says_what_was_pending_and_what_had_nothing_new() -> None:
    pending = BatchRef("users", "b3", "ops.pipeline_runs", pending=True, version=7, since_us=1)
    runs = {
        "users": TableRun(pending, rows=12, quarantined=0),
        "content": TableRun(BatchRef("content", "b1", "ops.pipeline_runs", True, 4, 1), rows=0, skipped=True),
    }
    lines = GateResult("run-2", runs, [], None).summary().splitlines()
    assert lines[0].startswith("quality gate PASSED (run run-2, 0 expectations")
    assert (
        "  bronze.users: version 7: what came after the last passed gate; newest batch b3 "
        "(from ops.pipeline_runs): 12 rows, 0 quarantined"
    ) in lines
    assert "  bronze.content: nothing new since the last passed gate (version 4)" in lines
    first = BatchRef("users", "b1", "bronze", pending=True, version=0)
    assert first.describe() == "version 0: everything (no passed gate yet); newest batch b1 (from bronze)"


def test_warnings_alone_pass_and_a_clean_run_says_so() -> None:
    warned = _result(_watch(CRITICAL, True, mostly=0.98), _watch(WARNING, False))
    assert warned.passed and len(warned.warnings) == 1
    assert warned.summary().startswith("quality gate PASSED with 1 warning(s)")
    assert _result(_watch(WARNING, True)).summary().startswith("quality gate PASSED (run run-1")


def test_example_keys_are_distinct_limited_and_join_composite_parts() -> None:
    index = [
        {"user_id": 1, "content_id": "c1"},
        {"user_id": 1, "content_id": "c1"},
        {"user_id": None, "content_id": "c2"},
    ]
    assert example_keys(index, ["user_id", "content_id"], limit=5) == ("1|c1", "null|c2")
    assert example_keys(index, ["user_id", "content_id"], limit=1) == ("1|c1",)
    assert example_keys(None, ["user_id"], limit=5) == ()


def test_stored_row_matches_the_schema_and_the_printed_values() -> None:
    outcome = _watch(CRITICAL, False, mostly=0.98)
    row = dict(zip(DQ_RESULTS_SCHEMA.fieldNames(), outcome.as_row("run-1"), strict=True))
    assert row["table_name"] == "viewing_sessions" and row["column"] == "watch_seconds"
    assert (row["unexpected_count"], row["unexpected_percent"], row["example_keys"]) == (30, 3.0, "11, 12")
    assert row["severity"] == CRITICAL and row["success"] is False
    assert row["parameters"] == '{"max_value": 86400, "min_value": 0, "mostly": 0.98}'
