"""Watermarks cross from Spark to Python as instants; the gate's batch resolution. Plain Spark tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from lakehouse_testing import local_zone
from pyspark.sql import functions as F

from lakehouse.bronze import watermarks as W
from lakehouse.quality.batches import (
    FROM_ARGUMENT,
    FROM_BRONZE,
    FROM_RUNS,
    BatchRef,
    GateError,
    check_tables,
    newest_batches,
    resolve_batches,
    tables_of_batch,
)

NOON_UTC = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
RUNS_SCHEMA = "run_id string, step string, source_table string, batch_id string, status string, " + (
    "started_at timestamp, ended_at timestamp"
)


@pytest.fixture
def paris_clock() -> Iterator[None]:
    """The Python process's local zone set to Europe/Paris (UTC+1 in January), then back."""
    with local_zone("Europe/Paris"):
        yield


@pytest.fixture
def schemas(spark) -> Iterator[None]:
    for schema in ("ops", "bronze"):
        spark.sql(f"create database if not exists {schema}")
    yield
    for schema in ("ops", "bronze"):
        spark.sql(f"drop database if exists {schema} cascade")


def test_stored_watermarks_come_back_as_the_same_instant_off_utc(spark, schemas: None, paris_clock: None) -> None:
    marks = [
        ("postgres", "users", NOON_UTC, "b1", NOON_UTC, None),
        ("mongodb", "content", NOON_UTC, "b2", NOON_UTC, '{"rows": 1}'),
    ]
    spark.createDataFrame(marks, W.SCHEMA).write.saveAsTable(W.WATERMARKS_TABLE)
    # The trap this guards against: collect() gives a naive datetime in the process's zone.
    assert spark.table(W.WATERMARKS_TABLE).first()["watermark"] == dt.datetime(2026, 1, 1, 13, 0)
    assert W.get_watermarks(spark) == {("postgres", "users"): NOON_UTC, ("mongodb", "content"): NOON_UTC}
    assert W.get_stored(spark)[("mongodb", "content")] == W.StoredMark(NOON_UTC, '{"rows": 1}')


def test_epoch_micros_round_trip_keeps_microseconds_and_nulls(spark, paris_clock: None) -> None:
    instant = dt.datetime(2026, 7, 1, 23, 59, 59, 123456, tzinfo=dt.UTC)
    frame = spark.createDataFrame([(instant,), (None,)], "updated_at timestamp")
    maximum = frame.agg(W.epoch_micros(F.max("updated_at")).alias("us")).first()["us"]
    assert W.utc_from_micros(maximum) == instant
    values = [W.utc_from_micros(r["us"]) for r in frame.select(W.epoch_micros("updated_at").alias("us")).collect()]
    assert values == [instant, None]


def _at(hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, 1, hour, tzinfo=dt.UTC)


def test_the_batch_to_validate_is_the_latest_successful_extract_else_the_newest_in_bronze(spark, schemas: None) -> None:
    runs = [
        ("r1", "extract", "users", "users-old", "succeeded", _at(1), _at(2)),
        ("r2", "extract", "users", "users-new", "succeeded", _at(3), _at(4)),
        ("r3", "extract", "users", "users-failed", "failed", _at(5), _at(6)),
        ("r4", "validate", "users", "users-validate", "succeeded", _at(7), _at(8)),
        ("r4", "extract", None, None, "succeeded", _at(7), _at(8)),
    ]
    spark.createDataFrame(runs, RUNS_SCHEMA).write.saveAsTable("ops.pipeline_runs")
    content = [("content-old", _at(1)), ("content-new", _at(5)), ("content-old", _at(2))]
    spark.createDataFrame(content, "_batch_id string, _ingested_at timestamp").write.saveAsTable("bronze.content")

    assert newest_batches(spark, ["users", "content"]) == [
        BatchRef("users", "users-new", FROM_RUNS),
        BatchRef("content", "content-new", FROM_BRONZE),
    ]
    assert resolve_batches(spark, ["users"], {"users": "given"}) == [BatchRef("users", "given", FROM_ARGUMENT)]
    assert tables_of_batch(spark, "users-old") == ["users"]
    assert tables_of_batch(spark, "content-old") == ["content"]  # found in bronze itself
    with pytest.raises(GateError, match="batch 'nowhere' is in no bronze table and in no extract"):
        tables_of_batch(spark, "nowhere")


def test_unknown_or_missing_tables_fail_with_the_known_names(spark, schemas: None) -> None:
    with pytest.raises(GateError, match="no bronze table 'nope': known tables are users, viewing_sessions"):
        check_tables(spark, ["users", "nope"])
    with pytest.raises(GateError, match=r"^bronze.users does not exist: run `lakehouse extract` first$"):
        check_tables(spark, ["users"])


def test_the_stored_watermark_never_passes_the_extract_start_minus_the_lookback() -> None:
    started = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    assert W.capped(None, started, 10) is None
    assert W.capped(NOON_UTC, started, 10) == NOON_UTC  # the usual case: far behind the clock
    assert W.capped(dt.datetime(2099, 1, 1, tzinfo=dt.UTC), started, 10) == started - dt.timedelta(minutes=10)
    assert W.capped(started, started, 10) == started - dt.timedelta(minutes=10)


def test_a_quarantined_record_fixed_and_re_extracted_no_longer_counts(spark) -> None:
    from lakehouse.quality.batches import without_superseded

    noon, one, two = (dt.datetime(2026, 1, 1, hour) for hour in (12, 13, 14))
    quarantined = spark.createDataFrame(
        [("k1", "p1", one), ("k2", "p2", one), ("k3", "p3", one)],
        "record_key string, payload_sha256 string, quarantined_at timestamp",
    )
    stored = spark.createDataFrame(
        [("k1", two), ("k2", noon)],  # k1: a good version arrived after; k2: only an older one
        "record_key string, _stored_at timestamp",
    )
    left = {row.record_key for row in without_superseded(quarantined, stored).collect()}
    assert left == {"k2", "k3"}


# ------------------------------------------------------------------ what an extract leaves in ops.watermarks


def _record(table: str, status: str, before: dt.datetime | None, after: dt.datetime | None):
    from lakehouse.audit import StepRecord

    record = StepRecord("r1", "extract", "postgres", table, batch_id=f"batch-{table}")
    record.watermark_before, record.watermark_after = before, after
    return record.finish(status)


def test_an_extract_stores_the_next_fingerprint_with_the_watermark_and_clears_it_when_it_fails() -> None:
    from lakehouse.bronze.extract import _marks

    later = NOON_UTC + dt.timedelta(hours=1)
    stored = {
        ("postgres", "users"): W.StoredMark(NOON_UTC, "fp-old"),
        ("postgres", "ratings"): W.StoredMark(NOON_UTC, "fp-same"),
        ("postgres", "viewing_sessions"): W.StoredMark(NOON_UTC, "fp-old"),
    }
    records = [
        _record("users", "succeeded", NOON_UTC, later),  # moved: watermark, batch and fingerprint
        _record("ratings", "succeeded", NOON_UTC, NOON_UTC),  # nothing new, same fingerprint: no change
        _record("viewing_sessions", "failed", NOON_UTC, None),  # failed: fingerprint cleared, watermark kept
        _record("never_seen", "failed", None, None),  # no row to clear
    ]
    fingerprints = {"postgres.users": "fp-new", "postgres.ratings": "fp-same"}
    assert _marks(records, fingerprints, stored) == [
        W.Mark("postgres", "users", later, "batch-users", "fp-new"),
        W.Mark("postgres", "viewing_sessions", None, None, None),
    ]
    # The same watermark with another fingerprint (a source that changed while it was read: None)
    # updates the fingerprint alone, keeping the batch that set the watermark.
    assert _marks(records[1:2], {}, stored) == [W.Mark("postgres", "ratings", None, None, None)]
