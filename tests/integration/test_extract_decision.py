"""Is there anything to extract? The decision, asked of the real PostgreSQL and FerretDB without Spark.

A wrong skip loses data silently, so each case changes the sources the way the issue lists,
asks the decision (``fingerprints.pending_tables``: psycopg2, pymongo and one Thrift query),
then runs the extract in this process (no spark-submit per case) and checks that the change
arrived in bronze or quarantine, that no key is in bronze twice, and that the next decision
finds nothing. Tables are changed side by side, one case per table, so a case that is missed
cannot hide behind another table's change.
"""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest
from lakehouse_testing import local_zone
from pymongo import MongoClient
from pyspark.sql import functions as F

from lakehouse.bronze.contracts import CONTRACTS, QUARANTINE_TABLE
from lakehouse.bronze.extract import run_extract
from lakehouse.bronze.fingerprints import pending_tables
from lakehouse.bronze.watermarks import get_watermarks
from lakehouse.config import Config
from lakehouse.pipeline.decisions import tables_to_extract

pytestmark = pytest.mark.integration


def _silent(_message: str) -> None:
    pass


def _pg(config: Config, statement: str, *params: object) -> list[tuple]:
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def _content(config: Config):
    return MongoClient(config.mongodb.connection_uri, serverSelectionTimeoutMS=5000)


def _marks(spark) -> dict[str, dt.datetime]:
    return {table: mark for (_system, table), mark in get_watermarks(spark).items()}


def _extract(spark, config: Config, run_id: str, tables: list[str] | None = None) -> dict:
    records = {r.source_table: r for r in run_extract(spark, config, tables=tables, run_id=run_id, progress=_silent)}
    return records


def _assert_each_key_once(spark) -> None:
    for name, contract in CONTRACTS.items():
        rows = spark.table(f"bronze.{name}")
        assert rows.count() == rows.select(*contract.key).distinct().count(), f"bronze.{name}: a key twice"


def _in_bronze(spark, table: str, condition: str) -> int:
    return spark.table(f"bronze.{table}").filter(F.expr(condition)).count()


def _copy_session(config: Config, new_id: int, updated_at: object) -> None:
    _pg(
        config,
        "insert into viewing_sessions select %s, user_id, content_id, episode, started_at, ended_at, watch_seconds, "
        "device_type, os, app_version, streaming_quality, avg_bitrate_kbps, buffering_events, completed, country, %s "
        "from viewing_sessions where session_id = (select min(session_id) from viewing_sessions)",
        new_id,
        updated_at,
    )


@pytest.fixture(scope="module")
def extracted(tiny_bronze, services: Config, spark) -> Config:
    """The tiny bronze as `lakehouse extract` left it: every table has its fingerprint."""
    assert pending_tables(services, CONTRACTS.values()) == {}
    return services


def test_late_commits_new_rows_edits_that_keep_updated_at_and_changed_documents_are_seen(
    spark, extracted: Config
) -> None:
    config = extracted
    lookback = dt.timedelta(minutes=config.bronze.lookback_minutes)
    marks = _marks(spark)
    # users: a new row, stamped after everything else.
    _pg(
        config,
        "insert into users select user_id + 10000000, email, first_name, last_name, birth_date, gender, country, "
        "city, signup_date, subscription_plan, billing_cycle, monthly_price, status, %s "
        "from users where user_id = (select min(user_id) from users)",
        marks["users"] + dt.timedelta(minutes=1),
    )
    # viewing_sessions: a row committed late, stamped inside the lookback window.
    _copy_session(config, 30_000_001, marks["viewing_sessions"] - lookback / 2)
    # ratings: an edit that keeps updated_at (the application did not stamp it).
    [(user_id, content_id, rating)] = _pg(
        config,
        "update ratings set rating = 6 - rating where (user_id, content_id) = (select user_id, content_id from "
        "ratings where updated_at <= %s order by updated_at desc, user_id limit 1) returning user_id, content_id, "
        "rating",
        marks["ratings"],
    )
    # content: a changed document.
    with _content(config) as mongo:
        collection = mongo[config.mongodb.database]["content"]
        document = collection.find_one({"updated_at": {"$type": "date"}}, sort=[("updated_at", -1)])
        stamp = (marks["content"] + dt.timedelta(minutes=1)).replace(tzinfo=None)
        collection.update_one({"_id": document["_id"]}, {"$set": {"title": "Fingerprinted", "updated_at": stamp}})

    # A laptop east of UTC: the decision and the extract compare instants, not local times.
    with local_zone("Asia/Tokyo"):
        pending = pending_tables(config, CONTRACTS.values())
        assert set(pending) == set(CONTRACTS), pending
        assert (
            pending["users"]
            == pending["viewing_sessions"]
            == ("its window changed since the last extract (1 row(s) more)")
        )
        assert pending["ratings"] == pending["content"] == "its window changed since the last extract (rows changed)"
        records = _extract(spark, config, "decision-1")
    assert all(r.status == "succeeded" for r in records.values()), records
    assert (records["users"].rows_inserted, records["users"].rows_updated) == (1, 0)
    assert (records["viewing_sessions"].rows_inserted, records["viewing_sessions"].rows_updated) == (1, 0)
    assert (records["ratings"].rows_inserted, records["ratings"].rows_updated) == (0, 1)
    assert (records["content"].rows_inserted, records["content"].rows_updated) == (0, 1)
    assert _in_bronze(spark, "ratings", f"user_id = {user_id} and content_id = '{content_id}' and rating = {rating}")
    assert _in_bronze(spark, "content", "title = 'Fingerprinted'") == 1
    _assert_each_key_once(spark)
    assert pending_tables(config, CONTRACTS.values()) == {}


def test_the_window_edge_undated_documents_future_rows_and_a_failed_extract_are_seen(spark, extracted: Config) -> None:
    config = extracted
    lookback = dt.timedelta(minutes=config.bronze.lookback_minutes)
    tolerance = dt.timedelta(minutes=config.bronze.future_tolerance_minutes)
    marks = _marks(spark)
    # ratings: its last extract failed (the source table was away): its fingerprint is cleared.
    _pg(config, "alter table ratings rename to ratings_away")
    try:
        failed = _extract(spark, config, "decision-failed", ["ratings"])
    finally:
        _pg(config, "alter table ratings_away rename to ratings")
    assert failed["ratings"].status == "failed"
    # users: a row exactly at the window's edge (watermark - lookback).
    _pg(
        config,
        "insert into users select user_id + 20000000, email, first_name, last_name, birth_date, gender, country, "
        "city, signup_date, subscription_plan, billing_cycle, monthly_price, status, %s "
        "from users where user_id = (select min(user_id) from users)",
        marks["users"] - lookback,
    )
    # viewing_sessions: a row stamped ahead of the clock, beyond the tolerance.
    now = dt.datetime.now(dt.UTC)
    ahead = now + tolerance + dt.timedelta(minutes=30)
    _copy_session(config, 30_000_002, ahead)
    # content: a new document without updated_at.
    with _content(config) as mongo:
        collection = mongo[config.mongodb.database]["content"]
        document = collection.find_one({"updated_at": {"$type": "date"}})
        undated = {k: v for k, v in document.items() if k != "updated_at"}
        collection.insert_one({**undated, "_id": "fingerprint-undated"})

    pending = pending_tables(config, CONTRACTS.values())
    assert set(pending) == set(CONTRACTS), pending
    assert pending["ratings"].startswith("no fingerprint of its last extract")
    assert (
        pending["users"]
        == pending["viewing_sessions"]
        == pending["content"]
        == ("its window changed since the last extract (1 row(s) more)")
    )
    records = _extract(spark, config, "decision-2")
    assert all(r.status == "succeeded" for r in records.values()), records
    assert _in_bronze(spark, "users", "user_id >= 20000000") == 1
    assert records["ratings"].rows_inserted == records["ratings"].rows_updated == 0
    quarantined = spark.table(QUARANTINE_TABLE)
    assert not quarantined.filter("record_key = 'fingerprint-undated'").isEmpty()
    assert not quarantined.filter("source_table = 'viewing_sessions' and record_key = '30000002'").isEmpty()
    assert _in_bronze(spark, "viewing_sessions", "session_id = 30000002") == 0
    assert pending_tables(config, CONTRACTS.values()) == {}
    # As time passes, the row ahead of the clock becomes due: the decision sees it without a change.
    later = ahead - tolerance + dt.timedelta(minutes=1)
    assert pending_tables(config, CONTRACTS.values(), now=later) == {
        "viewing_sessions": "1 row(s) stamped ahead of the clock are now due"
    }
    # ... and the next extract at that time (a wider tolerance here, rather than a wait) takes it.
    import dataclasses

    patient = dataclasses.replace(
        config, bronze=dataclasses.replace(config.bronze, future_tolerance_minutes=(ahead - now).seconds // 60 + 5)
    )
    taken = _extract(spark, patient, "decision-3", ["viewing_sessions"])
    assert taken["viewing_sessions"].rows_inserted == 1
    assert _in_bronze(spark, "viewing_sessions", "session_id = 30000002") == 1
    _assert_each_key_once(spark)
    _pg(config, "delete from viewing_sessions where session_id = 30000002")  # out of the later cases' way


def test_a_lakehouse_from_before_fingerprints_extracts_once_then_skips(spark, extracted: Config) -> None:
    config = extracted
    marks = _marks(spark)
    spark.sql(
        "create or replace table ops.watermarks using delta as "
        "select source_system, source_table, watermark, batch_id, updated_at from ops.watermarks"
    )
    said: list[str] = []
    assert tables_to_extract(config, None, said.append) is None  # cannot tell: everything runs
    assert said[0].startswith("extract runs: cannot tell without Spark whether the sources changed: "), said
    records = _extract(spark, config, "decision-old")
    assert all(r.status == "succeeded" for r in records.values()), records
    assert _marks(spark) == marks
    assert tables_to_extract(config, None, said.append) == []


def test_a_document_stamped_ahead_of_the_clock_in_text_becomes_due_too(spark, extracted: Config) -> None:
    """MongoDB does not see a date in a text ``updated_at``, but the extract types it as one."""
    config = extracted
    tolerance = dt.timedelta(minutes=config.bronze.future_tolerance_minutes)
    ahead = dt.datetime.now(dt.UTC) + tolerance + dt.timedelta(minutes=30)
    with _content(config) as mongo:
        collection = mongo[config.mongodb.database]["content"]
        document = collection.find_one({"updated_at": {"$type": "date"}})
        text = ahead.isoformat(timespec="seconds").replace("+00:00", "Z")
        collection.insert_one({**document, "_id": "fingerprint-text-stamp", "updated_at": text})
    try:
        assert pending_tables(config, [CONTRACTS["content"]]) == {
            "content": "its window changed since the last extract (1 row(s) more)"
        }
        records = _extract(spark, config, "decision-text", ["content"])
        assert records["content"].status == "succeeded", records["content"].error_message
        quarantined = spark.table(QUARANTINE_TABLE).filter("record_key = 'fingerprint-text-stamp'").collect()
        assert [row.reason.split(" is in the future")[0] for row in quarantined] == [
            f"updated_at: {ahead.strftime('%Y-%m-%d %H:%M:%S')}"
        ], quarantined
        assert pending_tables(config, [CONTRACTS["content"]]) == {}
        later = ahead - tolerance + dt.timedelta(minutes=1)
        assert pending_tables(config, [CONTRACTS["content"]], now=later) == {
            "content": "1 row(s) stamped ahead of the clock are now due"
        }
    finally:
        with _content(config) as mongo:
            mongo[config.mongodb.database]["content"].delete_one({"_id": "fingerprint-text-stamp"})


def test_rows_an_operator_quarantined_stay_out_until_their_record_changes(spark, extracted: Config) -> None:
    """The operator moved a row of the lookback window to quarantine: nothing changed at the
    source, so nothing is extracted; when another row of the window arrives, the extract reads the
    moved row again but leaves it in quarantine; a newer version of its record arrives as usual."""
    from lakehouse.quality.quarantine import move_to_quarantine

    config = extracted
    marks = _marks(spark)
    # The newest row the last extract read: inside the next extract's lookback window.
    [(moved_id,)] = _pg(
        config,
        "select session_id from viewing_sessions where updated_at <= %s order by updated_at desc, session_id limit 1",
        marks["viewing_sessions"],
    )
    move_to_quarantine(config, "viewing_sessions", f"session_id = {moved_id}", "a test case", run_id="decision-op")
    assert _in_bronze(spark, "viewing_sessions", f"session_id = {moved_id}") == 0
    assert pending_tables(config, [CONTRACTS["viewing_sessions"]]) == {}

    _copy_session(config, 30_000_003, marks["viewing_sessions"] + dt.timedelta(seconds=1))
    records = _extract(spark, config, "decision-op-1", ["viewing_sessions"])
    sessions = records["viewing_sessions"]
    assert sessions.status == "succeeded", sessions.error_message
    assert (sessions.rows_inserted, sessions.rows_updated) == (1, 0)
    assert _in_bronze(spark, "viewing_sessions", "session_id = 30000003") == 1
    assert _in_bronze(spark, "viewing_sessions", f"session_id = {moved_id}") == 0
    assert sessions.rows_read == sessions.rows_merged + sessions.rows_quarantined
    assert pending_tables(config, [CONTRACTS["viewing_sessions"]]) == {}

    # Fixed at the source: the newer version is extracted into bronze.
    _pg(
        config,
        "update viewing_sessions set watch_seconds = watch_seconds + 1, updated_at = %s where session_id = %s",
        marks["viewing_sessions"] + dt.timedelta(seconds=2),
        moved_id,
    )
    records = _extract(spark, config, "decision-op-2", ["viewing_sessions"])
    assert records["viewing_sessions"].rows_inserted == 1, records["viewing_sessions"]
    assert _in_bronze(spark, "viewing_sessions", f"session_id = {moved_id}") == 1
    _assert_each_key_once(spark)
    _pg(config, "delete from viewing_sessions where session_id = 30000003")


def test_a_source_that_is_down_stops_the_extract_before_spark_only_when_nothing_else_is_new(
    extracted: Config,
) -> None:
    """MongoDB down and nothing new in the other tables asked: the extract could only fail, so
    the decision says so in the extract's own words (and `lakehouse extract` starts no Spark:
    test_bronze.py's source-down test). With a new row in PostgreSQL that table is extracted,
    and the collection it could not ask goes with it, to fail in the extract as before."""
    import dataclasses

    from lakehouse.pipeline.decisions import SourcesDown

    config = dataclasses.replace(
        extracted,
        mongodb=dataclasses.replace(extracted.mongodb, uri=None, host="127.0.0.1", port=1),
        bronze=dataclasses.replace(extracted.bronze, source_retries=0, retry_backoff_seconds=0.0),
    )
    said: list[str] = []
    assert pending_tables(extracted, [CONTRACTS["users"]]) == {}
    with pytest.raises(SourcesDown) as down:
        tables_to_extract(config, ["users", "content"], said.append)
    assert len(down.value.lines) == 1, said
    assert down.value.lines[0].startswith("mongodb.content: mongodb source mongodb://127.0.0.1:1/")
    assert "unreachable after 1 attempts" in down.value.lines[0]
    _copy_session(config, 30_000_001, dt.datetime.now(dt.UTC))
    try:
        assert tables_to_extract(config, ["viewing_sessions", "content"], said.append) == [
            "viewing_sessions",
            "content",
        ]
        assert any(line.startswith("extract mongodb.content: runs") for line in said), said
    finally:
        _pg(config, "delete from viewing_sessions where session_id = 30000001")
