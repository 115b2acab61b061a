"""The frames the suites run on, and Great Expectations on small inline DataFrames."""

from __future__ import annotations

import datetime as dt

import great_expectations.expectations as gxe
from chispa import assert_df_equality
from pyspark.sql import functions as F

from expectations import common, viewing_sessions
from lakehouse.quality import frames
from lakehouse.quality.results import outcomes_from_validation
from lakehouse.quality.runner import GxRunner

USER_FK = common.ForeignKey("user_id", "users", "user_id")
INGESTED = dt.datetime(2026, 3, 1, 10, 0)


def test_orphans_are_foreign_keys_that_resolve_to_nothing(spark) -> None:
    batch = spark.createDataFrame([(1, 10), (2, 99), (3, None), (4, 10)], "session_id long, user_id long")
    known = spark.createDataFrame([(10,), (11,)], "user_id long")
    actual = frames.with_orphan_column(batch, USER_FK, known).select("session_id", "user_id", "_orphan_user_id")
    expected = spark.createDataFrame(
        [(1, 10, None), (2, 99, 99), (3, None, None), (4, 10, None)],
        "session_id long, user_id long, _orphan_user_id long",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_ingest_age_is_hours_since_ingestion(spark) -> None:
    batch = spark.createDataFrame([(1, INGESTED), (2, None)], "id long, _ingested_at timestamp")
    now = F.lit(INGESTED + dt.timedelta(hours=3, minutes=30)).cast("timestamp")
    ages = {r.id: r[common.INGEST_AGE_HOURS] for r in frames.with_ingest_age(batch, now).collect()}
    assert ages == {1: 3.5, 2: None}


def test_quarantine_frame_has_a_row_per_source_row(spark) -> None:
    batch = spark.createDataFrame([(1,), (2,)], "user_id long")
    quarantined = spark.createDataFrame([("7",), (None,)], "record_key string")
    actual = frames.quarantine_frame(batch, quarantined)
    expected = spark.createDataFrame(
        [(False, None), (False, None), (True, "7"), (True, None)], "_quarantined boolean, _record_key string"
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_suite_columns_are_what_the_expectations_read() -> None:
    suite = viewing_sessions.build().batch
    columns = frames.suite_columns(e.configuration.kwargs for e in suite.expectations)
    assert {"watch_seconds", "ended_at", "started_at", "device_type", "_orphan_user_id"} <= set(columns)
    assert [c for c in columns if frames.is_derived(c)] == [
        "_orphan_user_id",
        "_orphan_content_id",
        "_ingest_age_hours",
    ]


def test_great_expectations_runs_a_tagged_suite_on_spark(spark, tmp_path) -> None:
    rows = [(i, -5 if i < 3 else 60, "tv" if i % 10 else "toaster") for i in range(100)]
    frame = spark.createDataFrame(rows, "session_id long, watch_seconds int, device_type string")
    suite = common.build_suite(
        "bronze.test.batch",
        [
            *common.tiered(gxe.ExpectColumnValuesToBeBetween, column="watch_seconds", min_value=0),
            common.warning(gxe.ExpectColumnValuesToBeInSet(column="device_type", value_set=["tv"], mostly=0.5)),
            common.critical(gxe.ExpectTableRowCountToBeBetween(max_value=common.parameter(common.MAX_BATCH_ROWS))),
        ],
    )
    runner = GxRunner(tmp_path / "docs", "unit-run", example_keys=2)
    validation = runner.validate(suite, frame, index_columns=["session_id"], parameters={common.MAX_BATCH_ROWS: 50})
    outcomes = outcomes_from_validation(
        validation, table="test", batch_id="b1", key_columns=["session_id"], example_limit=2
    )
    summary = [(o.expectation, o.column, o.severity, o.success, o.unexpected_count) for o in outcomes]
    assert summary == [
        ("expect_column_values_to_be_between", "watch_seconds", "critical", False, 3),
        ("expect_column_values_to_be_between", "watch_seconds", "warning", False, 3),
        ("expect_column_values_to_be_in_set", "device_type", "warning", True, 10),
        ("expect_table_row_count_to_be_between", None, "critical", False, None),
    ]
    assert outcomes[0].example_keys == ("0", "1")
    assert outcomes[0].observed_value == "-5"
    assert outcomes[3].observed_value == "100" and outcomes[3].parameters == {"max_value": 50}
    docs = runner.build_docs()
    assert docs.is_file() and "bronze.test.batch" in docs.read_text()
