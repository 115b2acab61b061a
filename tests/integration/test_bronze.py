"""Bronze extraction against live PostgreSQL, FerretDB, Spark/Delta and the shared metastore.

The module takes the run's tiny bronze (``tiny_bronze``: freshly generated tiny sources loaded,
then the extract job run with spark-submit as a user would, into an empty bronze), and checks
reconciliation with the generator's manifest, idempotency, incremental reads after `simulate`,
a SIGKILL in the middle of a write, and a source that is down. Expected numbers come from the
manifest and from the source databases, never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from lakehouse_testing import local_zone
from pymongo import MongoClient
from pyspark.sql import functions as F

from lakehouse.bronze.contracts import CONTRACTS, QUARANTINE_TABLE
from lakehouse.bronze.extract import run_extract
from lakehouse.bronze.watermarks import get_watermarks
from lakehouse.config import Config

pytestmark = pytest.mark.integration

SOURCE_KEYS = {"users": "user_id", "viewing_sessions": "session_id", "ratings": "user_id, content_id"}


def _quarantine_kinds(manifest: dict, table: str) -> dict[str, dict]:
    treatment = manifest["defect_treatment"]
    return {k: v for k, v in manifest["defects"][table].items() if treatment[k] == "quarantine"}


def _rows(manifest: dict, table: str) -> int:
    name = "content.jsonl" if table == "content" else f"{table}.csv"
    return manifest["files"][name]["rows"]


def _key_text(key: object) -> str:
    """How the quarantine table writes a key: parts joined by '|', a missing part empty."""
    parts = key if isinstance(key, list) else [key]
    return "|".join("" if p is None else str(p) for p in parts)


def _source_latest(config: Config, table: str) -> dict[tuple, object]:
    """Newest updated_at per key in the PostgreSQL source (rows with a key)."""
    keys = SOURCE_KEYS[table]
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"select {keys}, max(updated_at) from {table} "
            f"where {' and '.join(f'{k.strip()} is not null' for k in keys.split(','))} group by {keys}"
        )
        return {tuple(row[:-1]): row[-1].replace(tzinfo=None) for row in cur.fetchall()}


def _bronze_latest(spark, table: str) -> dict[tuple, object]:
    keys = [k.strip() for k in SOURCE_KEYS[table].split(",")]
    return {tuple(r[k] for k in keys): r["updated_at"] for r in spark.table(f"bronze.{table}").collect()}


def _audit(spark, run_id: str) -> dict[str, object]:
    rows = spark.table("ops.pipeline_runs").filter(F.col("run_id") == run_id).collect()
    return {r.source_table: r for r in rows}


@pytest.fixture(scope="module")
def sources(tiny_bronze) -> dict:
    """The generator's manifest of the run's tiny sources (seed 42)."""
    return tiny_bronze.manifest


@pytest.fixture(scope="module")
def first_load(tiny_bronze) -> str:
    """The run id of the tiny bronze's first load: `lakehouse extract` (spark-submit, both
    sources in one application) into an empty bronze, see tests/conftest.py TinyState."""
    return tiny_bronze.run_id


def test_full_load_reconciles_with_the_manifest(spark, sources: dict, first_load: str) -> None:
    audit = _audit(spark, first_load)
    assert set(audit) == set(CONTRACTS)
    for table in CONTRACTS:
        record = audit[table]
        injected = _quarantine_kinds(sources, table)
        expected_quarantine = sum(kind["count"] for kind in injected.values())
        duplicates = sources["defects"][table].get("duplicate_key", {}).get("count", 0)
        assert record.status == "succeeded"
        assert record.rows_read == _rows(sources, table)
        assert record.rows_quarantined == expected_quarantine, table
        assert record.rows_read == record.rows_merged + record.rows_quarantined
        assert spark.table(f"bronze.{table}").count() == _rows(sources, table) - expected_quarantine - duplicates
        # Into the empty table the first load is a plain append (no MERGE join), its counts Delta's.
        [commit] = (
            spark.sql(f"describe history bronze.{table}").filter(F.col("userMetadata") == record.batch_id).collect()
        )
        assert (commit.operation, commit.operationParameters["mode"]) == ("WRITE", "Append"), table
        assert int(commit.operationMetrics["numOutputRows"]) == record.rows_inserted == record.rows_merged - duplicates
        quarantined = spark.table(QUARANTINE_TABLE).filter(F.col("source_table") == table)
        assert quarantined.count() == expected_quarantine
        injected_keys = {_key_text(key) for kind in injected.values() for key in kind["keys"]}
        stored_keys = {r.record_key for r in quarantined.collect() if r.record_key is not None}
        assert injected_keys == stored_keys, table


def test_bronze_equals_the_source(spark, sources: dict, first_load: str, services: Config) -> None:
    for table in SOURCE_KEYS:
        quarantined = {
            tuple(json.loads(json.dumps(k)) if isinstance(k, list) else [k])
            for kind in _quarantine_kinds(sources, table).values()
            for k in kind["keys"]
        }
        expected = {k: v for k, v in _source_latest(services, table).items() if k not in quarantined}
        assert _bronze_latest(spark, table) == expected, table


def test_documents_stay_nested_and_drift_is_rescued(spark, sources: dict, first_load: str) -> None:
    content = spark.table("bronze.content")
    assert content.schema["seasons"].dataType.elementType["episodes"].dataType.elementType.fieldNames() == [
        "episode_number",
        "title",
        "duration_minutes",
    ]
    drifted = sources["defects"]["content"]["unknown_extra_field"]["keys"]
    rows = content.filter(F.col("content_id").isin(drifted)).collect()
    assert len(rows) == len(drifted)
    assert all(r._rescued_data and json.loads(r._rescued_data) for r in rows)
    assert content.filter(F.col("_rescued_data").isNotNull()).count() == len(drifted)
    series = content.filter(F.col("type") == "series").first()
    assert series.seasons[0].episodes[0].episode_number == 1
    assert {r._source_system for r in content.select("_source_system").distinct().collect()} == {"mongodb"}


def test_a_small_batch_kept_by_the_fingerprint_equals_the_partitioned_read(
    spark, services: Config, first_load: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small MongoDB batch (at most readers.DRIVER_READ_MAX_DOCUMENTS) is the documents the
    fingerprint of its window read: no bounds queries, no updated_at ranges split across Spark
    partitions, no query at all. The same documents either way, for the whole collection and
    for a window; a bigger window is read in ranges."""
    from lakehouse.bronze import fingerprints, readers

    content = CONTRACTS["content"]
    with MongoClient(services.mongodb.connection_uri, serverSelectionTimeoutMS=5000) as mongo:
        collection = mongo[services.mongodb.database]["content"]
        stamps = sorted(d["updated_at"] for d in collection.find({"updated_at": {"$type": "date"}}, {"updated_at": 1}))
        everything = collection.count_documents({})
    middle = stamps[len(stamps) // 2].replace(tzinfo=dt.UTC)
    split_ranges = readers.mongo_ranges
    ranges_taken: list[int] = []

    def counted_ranges(*args, **kwargs):
        ranges_taken.append(1)
        return split_ranges(*args, **kwargs)

    monkeypatch.setattr(readers, "mongo_ranges", counted_ranges)
    for since in (None, middle):
        split = sorted(readers.read_mongodb(spark, services, content, since).collect())
        assert len(ranges_taken) == 1
        fingerprint, documents = fingerprints.take_with_documents(services, content, since)
        assert documents is not None and fingerprint.rows == len(documents) == len(split)
        kept = readers.read_mongodb(spark, services, content, since, documents=documents).collect()
        assert len(ranges_taken) == 1  # no bounds, no ranges
        ranges_taken.clear()
        assert sorted(kept) == split, since
        assert len(split) == everything if since is None else 0 < len(split) < everything
    monkeypatch.setattr(readers, "DRIVER_READ_MAX_DOCUMENTS", everything - 1)
    fingerprint, documents = fingerprints.take_with_documents(services, content, None)
    assert documents is None and fingerprint.rows == everything


def test_bronze_columns_are_visible_over_thrift(first_load: str, cli) -> None:
    result = cli("sql", "describe bronze.viewing_sessions", "--format", "csv")
    assert result.returncode == 0, result.stderr
    names = [line.split(",")[0] for line in result.stdout.splitlines()[1:]]
    assert names[:2] == ["session_id", "user_id"]
    assert {"_ingested_at", "_batch_id", "_source_system", "_rescued_data"} <= set(names)


def test_rerunning_the_same_batch_changes_nothing(spark, services: Config, first_load: str) -> None:
    before = {t: spark.table(f"bronze.{t}").count() for t in CONTRACTS}
    quarantine_before = spark.table(QUARANTINE_TABLE).count()
    # Forget the watermarks: the same rows are read again, as after a crash before the
    # watermark update.
    spark.sql("delete from ops.watermarks")
    records = run_extract(spark, services, run_id="rerun", progress=lambda _m: None)
    assert all(r.status == "succeeded" for r in records), [r.error_message for r in records]
    for record in records:
        assert record.rows_inserted == 0 and record.rows_updated == 0, record
        assert record.rows_read > 0
    assert {t: spark.table(f"bronze.{t}").count() for t in CONTRACTS} == before
    assert spark.table(QUARANTINE_TABLE).count() == quarantine_before


def test_incremental_extract_off_utc_reads_exactly_the_changed_rows(
    spark, services: Config, first_load: str, cli
) -> None:
    marks = {table: mark for (_system, table), mark in get_watermarks(spark).items()}
    simulated = cli("simulate", "--days", "1")
    assert simulated.returncode == 0, simulated.stderr
    # Europe/Paris is UTC+1 or +2: a watermark read or written as local time skips an hour or two.
    with local_zone("Europe/Paris"):
        records = {r.source_table: r for r in run_extract(spark, services, run_id="incr", progress=lambda _m: None)}
    after = {table: mark for (_system, table), mark in get_watermarks(spark).items()}
    lookback = f"interval '{services.bronze.lookback_minutes} minutes'"
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        for table in SOURCE_KEYS:
            cur.execute(
                f"select count(*) from {table} where updated_at >= %s::timestamptz - {lookback}", (marks[table],)
            )
            changed = cur.fetchone()[0]
            assert records[table].rows_read == changed, table  # nothing skipped, nothing re-read
            cur.execute(f"select count(*), max(updated_at) from {table}")
            total, newest = cur.fetchone()
            assert changed < total / 2, f"{table}: an incremental batch should be small"
            assert after[table] == newest, f"{table}: the stored watermark is the newest updated_at read"
    assert records["viewing_sessions"].rows_inserted > 0
    assert records["viewing_sessions"].rows_updated > 0
    for table in SOURCE_KEYS:
        source = _source_latest(services, table)
        bronze = _bronze_latest(spark, table)
        assert all(source[k] == v for k, v in bronze.items()), table
        newer = {k for k, v in source.items() if v > marks[table].astimezone(dt.UTC).replace(tzinfo=None)}
        assert newer <= set(bronze), table


FUTURE = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def _touch_session(config: Config, where: str) -> tuple[int, dt.datetime]:
    """Change one session in the source, stamped just after everything else; its id and stamp."""
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "update viewing_sessions set watch_seconds = watch_seconds + 1, updated_at = "
            f"(select max(updated_at) from viewing_sessions where updated_at < '2099-01-01') + interval '1 minute' "
            f"where session_id = (select min(session_id) from viewing_sessions where {where}) "
            "returning session_id, updated_at"
        )
        return cur.fetchone()


def test_a_future_updated_at_is_quarantined_later_changes_arrive_and_a_tie_keeps_the_later_edit(
    spark, services: Config, first_load: str
) -> None:
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "insert into viewing_sessions select session_id + 10000000, user_id, content_id, episode, started_at, "
            "ended_at, watch_seconds, device_type, os, app_version, streaming_quality, avg_bitrate_kbps, "
            "buffering_events, completed, country, %s from viewing_sessions "
            "where session_id = (select min(session_id) from viewing_sessions) returning session_id",
            (FUTURE,),
        )
        future_id = cur.fetchone()[0]
    try:
        first, stamped = _touch_session(services, "session_id > 100")
        one = {"tables": ["viewing_sessions"], "sources": ("postgres",), "progress": lambda _m: None}
        [record] = run_extract(spark, services, run_id="future-1", **one)
        assert record.status == "succeeded", record.error_message
        assert record.rows_quarantined == 1
        reason = (
            spark.table(QUARANTINE_TABLE)
            .filter((F.col("batch_id") == record.batch_id) & (F.col("record_key") == str(future_id)))
            .first()["reason"]
        )
        assert reason.startswith("updated_at: 2099-01-01 00:00:00 is in the future")
        assert spark.table("bronze.viewing_sessions").filter(F.col("session_id") == future_id).isEmpty()
        # The watermark is the newest updated_at that is not in the future: the touched row's.
        mark = get_watermarks(spark)[("postgres", "viewing_sessions")]
        assert mark == stamped, (mark, stamped)
        # A change made after the 2099 row still arrives with the next extract.
        second, _stamped = _touch_session(services, f"session_id > {first}")
        [again] = run_extract(spark, services, run_id="future-2", **one)
        assert again.status == "succeeded", again.error_message
        batch = spark.table("bronze.viewing_sessions").filter(F.col("_batch_id") == again.batch_id)
        arrived = {r.session_id for r in batch.select("session_id").collect()}
        assert second in arrived and first not in arrived
        # A second edit stamped with the same updated_at (an application that sets it itself):
        # the later extract's row differs, so it replaces the stored one (writer.replaces_stored_row).
        with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute(
                "update viewing_sessions set watch_seconds = watch_seconds + 7 where session_id = %s "
                "returning watch_seconds",
                (second,),
            )
            [edited] = cur.fetchone()
        [tie] = run_extract(spark, services, run_id="future-3", **one)
        assert tie.status == "succeeded", tie.error_message
        kept = spark.table("bronze.viewing_sessions").filter(F.col("session_id") == second).first()
        assert (kept.watch_seconds, kept._batch_id) == (edited, tie.batch_id)
        # Rows read again unchanged are not rewritten: only the edited one is in the new batch.
        assert spark.table("bronze.viewing_sessions").filter(F.col("_batch_id") == tie.batch_id).count() == 1
    finally:
        with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute("delete from viewing_sessions where session_id = %s", (future_id,))


def _job(config: Config, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    from lakehouse.spark import spark_env, spark_submit_command, write_spark_conf

    write_spark_conf(config)
    command = spark_submit_command(config, str(Path("jobs/extract.py").resolve()), list(args), app_name="kill-test")
    return subprocess.Popen(
        command,
        env={**spark_env(config), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _change_the_sources(config: Config) -> int:
    """A batch for every PostgreSQL table: edits stamped after everything else, one untypable row."""
    stamp = "(select max(updated_at) from {table} where updated_at < '2099-01-01') + interval '2 minutes'"
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"update viewing_sessions set watch_seconds = watch_seconds + 3, updated_at = "
            f"{stamp.format(table='viewing_sessions')} where session_id % 97 = 5"
        )
        cur.execute(
            "insert into viewing_sessions select session_id + 20000000, user_id, content_id, episode, "
            "'not a time', ended_at, watch_seconds, device_type, os, app_version, streaming_quality, avg_bitrate_kbps, "
            f"buffering_events, completed, country, {stamp.format(table='viewing_sessions')} from viewing_sessions "
            "where session_id = (select min(session_id) from viewing_sessions) returning session_id"
        )
        [(untypable_id,)] = cur.fetchall()
        cur.execute(
            f"update users set city = 'Crashtown', updated_at = {stamp.format(table='users')} where user_id % 50 = 1"
        )
        cur.execute(
            f"update ratings set rating = 6 - rating, updated_at = {stamp.format(table='ratings')} "
            "where (user_id + length(content_id)) % 40 = 3"
        )
    return untypable_id


def _assert_bronze_plus_quarantine_is_the_source(spark, config: Config) -> None:
    """Every key of every source table: in bronze with its newest version, or in quarantine;
    no key twice in bronze, no payload twice in quarantine."""
    quarantine = spark.table(QUARANTINE_TABLE)
    assert quarantine.count() == quarantine.select("source_table", "payload_sha256").distinct().count()
    for table in SOURCE_KEYS:
        source = _source_latest(config, table)
        bronze = _bronze_latest(spark, table)
        assert spark.table(f"bronze.{table}").count() == len(bronze), f"{table}: a key twice in bronze"
        quarantined = {
            r.record_key for r in quarantine.filter(F.col("source_table") == table).select("record_key").collect()
        }
        missing = [k for k in source if k not in bronze and _key_text(list(k)) not in quarantined]
        stale = [
            k for k, v in source.items() if k in bronze and bronze[k] != v and _key_text(list(k)) not in quarantined
        ]
        assert (missing, stale) == ([], []), table
        assert set(bronze) <= set(source), f"{table}: bronze has keys the source does not"
    with MongoClient(config.mongodb.connection_uri, serverSelectionTimeoutMS=5000) as mongo:
        documents = {str(d["_id"]) for d in mongo[config.mongodb.database]["content"].find({}, {"_id": 1})}
    content = {r.content_id for r in spark.table("bronze.content").select("content_id").collect()}
    quarantined = {r.record_key for r in quarantine.filter(F.col("source_table") == "content").collect()}
    assert documents - content <= quarantined and content <= documents


@pytest.mark.timeout(900)  # five extract applications one after the other (about 280-360 s in CI)
def test_kill_9_at_each_commit_point_then_a_rerun_loses_and_duplicates_nothing(
    spark, services: Config, first_load: str, cli
) -> None:
    """SIGKILL the extract of the PostgreSQL tables (driver and JVM) before the bronze commit,
    before the quarantine commit (bronze written), before the watermarks (both written) and
    before the audit (watermarks moved), one run after the other: each run is the re-run of the
    one before. Then a clean re-run, and bronze plus quarantine must be exactly the sources
    (every key of every table, MongoDB's too)."""
    from lakehouse.bronze.extract import CRASH_ENV, CRASH_POINTS

    untypable_id = _change_the_sources(services)
    marks = get_watermarks(spark)
    for point in CRASH_POINTS:
        chosen = f"{point}:viewing_sessions" if "commit" in point else point
        process = _job(services, "--source", "postgres", "--run-id", f"crash-{point}", env={CRASH_ENV: chosen})
        output, _ = process.communicate(timeout=600)
        assert process.returncode == -signal.SIGKILL, f"{chosen}: exit {process.returncode}\n{output[-3000:]}"
        for table in [*SOURCE_KEYS, "content"]:
            history = spark.sql(f"describe history bronze.{table}").orderBy("version").collect()
            assert [h.version for h in history] == list(range(len(history)))  # no gap, no torn version
            rows = spark.table(f"bronze.{table}")
            assert rows.count() == rows.select(*CONTRACTS[table].key).distinct().count(), (chosen, table)
        moved = get_watermarks(spark) != marks
        assert moved == (point == "before-audit"), chosen  # the watermarks move last but one
        assert spark.table("ops.pipeline_runs").filter(F.col("run_id") == f"crash-{point}").isEmpty(), chosen
    # The clean re-run is a full refresh of the sessions: it also shows that a full refresh
    # replaces the table's quarantine in one commit (nothing to lose in between), so the 2099
    # row of the test above, gone from the source since, is gone from quarantine too.
    quarantine_before = spark.sql(f"describe history {QUARANTINE_TABLE} limit 1").first()["version"]
    rerun = cli(
        "extract",
        "--source",
        "postgres",
        "--table",
        "viewing_sessions",
        "--full-refresh",
        "--run-id",
        "crash-rerun",
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    replaced = spark.sql(f"describe history {QUARANTINE_TABLE}").filter(F.col("version") > quarantine_before)
    assert [r.operation for r in replaced.collect()] == ["MERGE"]
    _assert_bronze_plus_quarantine_is_the_source(spark, services)
    untypable = spark.table(QUARANTINE_TABLE).filter(F.col("record_key") == str(untypable_id)).collect()
    assert [row.reason for row in untypable] == ["started_at: cannot read 'not a time' as timestamp"]
    assert not spark.table("ops.pipeline_runs").filter(F.col("run_id") == "crash-rerun").isEmpty()


def test_source_down_fails_with_one_clear_line(services: Config, first_load: str, project_root: Path) -> None:
    # MongoDB is the source taken down here: PostgreSQL also holds the metastore.
    env = dict(
        os.environ,
        LAKEHOUSE_MONGODB_PORT="1",
        LAKEHOUSE_BRONZE_SOURCE_RETRIES="1",
        LAKEHOUSE_BRONZE_RETRY_BACKOFF_SECONDS="0.1",
    )
    result = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "extract", "--source", "mongodb"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project_root,
        check=False,
    )
    assert result.returncode == 1
    # Under spark-submit the Python driver's stderr reaches us merged into stdout.
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("extract: error")]
    assert len(errors) == 1, output[-2000:]
    assert errors[0] == (
        "extract: error: mongodb.content: mongodb source mongodb://127.0.0.1:1/streaming "
        "is unreachable after 2 attempts: 127.0.0.1:1: [Errno 111] Connection refused"
    )
    # The decision found the source down and nothing else to extract: no Spark for nothing.
    assert "Spark session ready" not in output, output[-2000:]


def test_postgres_source_down_is_retried_then_named(services: Config) -> None:
    import dataclasses

    from lakehouse.bronze.readers import SourceUnavailable, postgres_bounds

    down = dataclasses.replace(
        services,
        postgres=dataclasses.replace(services.postgres, port=1),
        bronze=dataclasses.replace(services.bronze, source_retries=2, retry_backoff_seconds=0.05),
    )
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:
        postgres_bounds(down, CONTRACTS["users"], None)
    message = str(err.value)
    assert message.startswith("postgres source 127.0.0.1:1 is unreachable after 3 attempts")
    assert "\n" not in message
    assert services.postgres.password not in message
    assert time.monotonic() - started >= 0.05 + 0.1  # the backoff was applied
