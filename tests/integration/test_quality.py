"""The quality gate on live bronze tables (PostgreSQL, FerretDB, Spark/Delta, Thrift).

The module goes through five states, in this order:

1. default: the run's tiny bronze (``tiny_bronze``: the generator's default defect rate); the
   gate passes with warnings whose counts are the manifest's;
2. clean: tiny sources generated with ``defect_rate=0``, loaded and extracted into an emptied
   bronze; the gate passes without a single warning;
3. injected: on top of the clean state, one defective bronze batch per table is written with
   Spark the way an extract writes (``_batch_id``, ``_ingested_at``, its quarantined rows and
   its ``extract`` row in ``ops.pipeline_runs``), with a known number of rows per critical
   defect kind; the gate fails and names each expectation with exactly that count, and
   ``ops.dq_results`` holds what was printed (``lakehouse validate --batch-id`` through
   spark-submit is checked on the e2e stack's failed gate, tests/e2e/test_pipeline.py);

4. sticky: the next run's extract finds nothing new; the gate still validates every row no
   passed verdict covers, so it fails with the same counts, and transform refuses to run;
5. released: an operator moves the injected rows to quarantine (``lakehouse quarantine``) and
   accepts the sessions' quarantined rows; the gate passes, transform may read bronze, and a
   gate with nothing new validates nothing.

The clean state drops bronze: a later module that asks for ``tiny_bronze`` gets it rebuilt.

Expected numbers come from what the test injected or from the generator's manifest, never from
the gate.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.audit import StepRecord, record_steps
from lakehouse.bronze.contracts import (
    BATCH_ID,
    CONTENT,
    CONTRACTS,
    INGESTED_AT,
    QUARANTINE_TABLE,
    RATINGS,
    RESCUED_DATA,
    USERS,
    VIEWING_SESSIONS,
    Contract,
)
from lakehouse.bronze.extract import run_extract
from lakehouse.config import Config
from lakehouse.modeling.runner import EXIT_REFUSED, GateNotPassed, validated_bronze_versions
from lakehouse.pipeline.decisions import freshness_warnings, ingest_age_hours, last_failure, unvalidated
from lakehouse.quality.batches import GateError, current_version, has_pending, resolve_batches, tables_of_batch
from lakehouse.quality.gate import GateResult, run_gate
from lakehouse.quality.quarantine import QuarantineError, accept_quarantined, move_to_quarantine
from lakehouse.quality.results import DQ_RESULTS_TABLE, describe
from lakehouse.quality.verdicts import VERDICTS_TABLE
from lakehouse.sources.generate import generate
from lakehouse.sources.load import load_sources

pytestmark = pytest.mark.integration

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
BE_NULL = "expect_column_values_to_be_null"
ROW_COUNT = "expect_table_row_count_to_be_between"

# Rows of each injected batch, and rows per defect kind in it (every share above 2 %).
SESSION_ROWS, USER_ROWS, RATING_ROWS, CONTENT_ROWS = 200, 100, 100, 50
PER_KIND = {"viewing_sessions": 10, "users": 5, "ratings": 5, "content": 3}
QUARANTINED_SESSIONS = 25  # 25 / (203 + 25): 11 % of the batch's source rows
MAX_BATCH_ROWS = 150  # the in-process run lowers the band below the sessions batch
DUPLICATED_SESSIONS = 2


def _silent(_message: str) -> None:
    pass


def _extract_fresh(spark: SparkSession, config: Config, out: Path, run_id: str, defect_rate: float) -> dict:
    manifest = generate(out, scale="tiny", seed=42, defect_rate=defect_rate)
    load_sources(config, out, replace=True, progress=_silent)
    for schema in ("bronze", "ops"):
        spark.sql(f"drop database if exists {schema} cascade")
    records = run_extract(spark, config, run_id=run_id, progress=_silent)
    assert all(r.status == "succeeded" for r in records), [r.error_message for r in records]
    return {**manifest, "batch_ids": {r.source_table: r.batch_id for r in records}}


def _failures(result: GateResult) -> dict[tuple[str, str, str | None], int | None]:
    return {(o.table, o.expectation, o.column): o.unexpected_count for o in result.failures}


# --------------------------------------------------------------------------- 1. default rate


@pytest.fixture(scope="module")
def default_gate(spark, services: Config, tiny_bronze: Any) -> tuple[dict, GateResult]:
    """The run's tiny bronze (default defect rate), validated."""
    return tiny_bronze.manifest, run_gate(spark, services, run_id="q-default")


def _outcome_count(result: GateResult, table: str, expectation: str, column: str, severity: str) -> int:
    outcome = next(
        o
        for o in result.outcomes
        if (o.table, o.expectation, o.column, o.severity) == (table, expectation, column, severity)
    )
    return outcome.unexpected_count or 0


def test_default_defect_rate_passes_with_warnings(default_gate: tuple[dict, GateResult]) -> None:
    manifest, result = default_gate
    assert result.passed, result.summary()
    assert result.warnings and "PASSED with" in result.summary().splitlines()[0]
    defects = manifest["defects"]
    gate_kinds = {
        ("users", IN_SET, "subscription_plan"): defects["users"]["unknown_plan"]["count"],
        ("viewing_sessions", BETWEEN, "watch_seconds"): defects["viewing_sessions"]["negative_watch_seconds"]["count"]
        + defects["viewing_sessions"]["absurd_watch_seconds"]["count"],
        ("viewing_sessions", PAIR, "ended_at,started_at"): defects["viewing_sessions"]["ended_before_started"]["count"],
        ("ratings", BETWEEN, "rating"): defects["ratings"]["rating_out_of_range"]["count"],
        ("content", NOT_NULL, "title"): defects["content"]["missing_title"]["count"],
    }
    warned = {(o.table, o.expectation, o.column): o.unexpected_count for o in result.warnings}
    for check, count in gate_kinds.items():
        assert count > 0 and warned.get(check) == count, (check, count, warned.get(check))
    # Orphans stay under the warning share at the default rate, but they are counted.
    for table in ("viewing_sessions", "ratings"):
        for kind, column in (("orphan_user_id", "user_id"), ("orphan_content_id", "content_id")):
            expected = defects[table][kind]["count"]
            assert _outcome_count(result, table, BE_NULL, column, "warning") == expected, (table, kind)


# --------------------------------------------------------------------------- 2. clean state


@pytest.fixture(scope="module")
def clean_bronze(spark, services: Config, tmp_path_factory) -> dict:
    return _extract_fresh(spark, services, tmp_path_factory.mktemp("quality-clean"), "quality-clean", 0.0)


@pytest.fixture(scope="module")
def clean_gate(spark, services: Config, clean_bronze: dict) -> GateResult:
    return run_gate(spark, services, run_id="q-clean")


def test_clean_batch_passes_without_warnings(clean_gate: GateResult, clean_bronze: dict) -> None:
    assert clean_gate.passed, clean_gate.summary()
    assert clean_gate.warnings == [], clean_gate.summary()
    # The newest batch of each table is its extract's, found in ops.pipeline_runs.
    assert {t: r.batch.batch_id for t, r in clean_gate.tables.items()} == clean_bronze["batch_ids"]
    assert clean_gate.tables["viewing_sessions"].rows == clean_bronze["files"]["viewing_sessions.csv"]["rows"]
    assert "PASSED" in clean_gate.summary().splitlines()[0]


def test_results_docs_and_audit_rows_are_stored(spark, clean_gate: GateResult, cli) -> None:
    stored = spark.table(DQ_RESULTS_TABLE).filter(F.col("run_id") == "q-clean")
    assert stored.count() == len(clean_gate.outcomes)
    assert stored.filter(~F.col("success")).count() == 0
    assert {r.table_name for r in stored.select("table_name").distinct().collect()} == set(CONTRACTS)
    steps = spark.table("ops.pipeline_runs").filter((F.col("run_id") == "q-clean") & (F.col("step") == "validate"))
    rows = {r.source_table: r for r in steps.collect()}
    assert set(rows) == set(CONTRACTS)
    assert all(r.status == "succeeded" for r in rows.values())
    assert rows["viewing_sessions"].rows_read == clean_gate.tables["viewing_sessions"].rows
    docs = clean_gate.docs_path
    assert docs is not None and docs.name == "index.html" and docs.is_file()
    pages = list(docs.parent.glob("validations/bronze/viewing_sessions/batch/q-clean/*/*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "watch_seconds" in page
    assert "bronze.viewing_sessions.batch" in docs.read_text()
    # Queryable over the Thrift server, as BI tools see it.
    result = cli("sql", "select count(*) as n from ops.dq_results where run_id = 'q-clean'", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": len(clean_gate.outcomes)}]


def test_a_batch_id_names_its_table_and_unknown_names_fail_clearly(spark, services: Config, clean_bronze: dict) -> None:
    users_batch = clean_bronze["batch_ids"]["users"]
    assert tables_of_batch(spark, users_batch) == ["users"]
    with pytest.raises(GateError, match="batch 'no-such-batch' is in no bronze table"):
        tables_of_batch(spark, "no-such-batch")
    with pytest.raises(GateError, match="no bronze table 'films'"):
        run_gate(spark, services, run_id="q-bad", batch_ids={"films": "x"})


# --------------------------------------------------------------------------- 3. injected defects


def _copy_with_new_keys(spark: SparkSession, contract: Contract, rows: int, new_key: F.Column) -> DataFrame:
    """`rows` existing bronze rows under new keys; `_n` numbers them from 0 (stable order)."""
    order = Window.orderBy(*contract.key)
    return (
        spark.table(contract.table)
        .orderBy(*contract.key)
        .limit(rows)
        .withColumn("_n", F.row_number().over(order) - 1)
        .withColumn(contract.key[0], new_key)
    )


def _with_defects(frame: DataFrame, per_kind: int, defects: list[tuple[str, F.Column]]) -> DataFrame:
    """Defect i goes to the rows numbered i * per_kind .. (i + 1) * per_kind - 1: one kind per row."""
    for i, (column, value) in enumerate(defects):
        hit = F.col("_n").between(i * per_kind, (i + 1) * per_kind - 1)
        frame = frame.withColumn(column, F.when(hit, value).otherwise(F.col(column)))
    return frame


def _append_batch(spark: SparkSession, contract: Contract, frame: DataFrame, batch_id: str) -> list:
    """Append rows as a bronze batch (the extract's metadata columns); return their keys."""
    stamped = frame.withColumn(BATCH_ID, F.lit(batch_id)).withColumn(INGESTED_AT, F.current_timestamp())
    stamped = stamped.withColumn(RESCUED_DATA, F.lit(None).cast("string"))
    writer = stamped.select(*contract.bronze_schema.fieldNames()).write.format("delta").mode("append")
    writer.saveAsTable(contract.table)
    return [r[0] for r in frame.orderBy("_n").select(contract.key[0]).collect()]  # a few hundred test rows


def _inject_sessions(spark: SparkSession, batch_id: str) -> dict:
    """New sessions with four defect kinds, two duplicated keys, a null key, quarantined rows."""
    c, k = VIEWING_SESSIONS, PER_KIND["viewing_sessions"]
    top = spark.table(c.table).agg(F.max("session_id")).first()[0]
    rows = _with_defects(
        _copy_with_new_keys(spark, c, SESSION_ROWS, F.lit(top + 1) + F.col("_n")),
        k,
        [
            ("watch_seconds", F.lit(-60)),
            ("ended_at", F.col("started_at") - F.expr("interval 1 hour")),
            ("device_type", F.lit("smart-fridge")),
            ("streaming_quality", F.lit("8K")),
        ],
    )
    clean = spark.table(c.table).orderBy("session_id").withColumn("_n", F.lit(SESSION_ROWS))
    duplicates = clean.limit(DUPLICATED_SESSIONS)
    null_key = clean.limit(1).withColumn("session_id", F.lit(None).cast("long"))
    keys = _append_batch(spark, c, rows.unionByName(duplicates).unionByName(null_key), batch_id)
    quarantined = spark.range(QUARANTINED_SESSIONS).select(
        F.lit(c.source_system).alias("source_system"),
        F.lit(c.source_name).alias("source_table"),
        F.concat(F.lit("q"), F.col("id").cast("string")).alias("record_key"),
        F.lit("{}").alias("payload"),
        F.lit("started_at: cannot read 'soon' as timestamp").alias("reason"),
        F.sha2(F.concat(F.lit(batch_id), F.col("id").cast("string")), 256).alias("payload_sha256"),
        F.lit(batch_id).alias("batch_id"),
        F.current_timestamp().alias("quarantined_at"),
    )
    quarantined.write.format("delta").mode("append").saveAsTable(QUARANTINE_TABLE)
    return {"rows": SESSION_ROWS + DUPLICATED_SESSIONS + 1, "negative": keys[:k]}


def _inject_users(spark: SparkSession, batch_id: str) -> list[int]:
    c, k = USERS, PER_KIND["users"]
    top = spark.table(c.table).agg(F.max("user_id")).first()[0]
    rows = _with_defects(
        _copy_with_new_keys(spark, c, USER_ROWS, F.lit(top + 1) + F.col("_n")),
        k,
        [
            ("subscription_plan", F.lit("platinum")),
            ("billing_cycle", F.lit("weekly")),
            ("status", F.lit("deleted")),
            ("birth_date", F.lit("2100-01-01").cast("date")),
        ],
    )
    return _append_batch(spark, c, rows, batch_id)


def _inject_ratings(spark: SparkSession, batch_id: str, new_users: list[int]) -> None:
    """The new users rate titles others rated (new composite keys); one duplicated key."""
    c, k = RATINGS, PER_KIND["ratings"]
    rows = _with_defects(
        _copy_with_new_keys(spark, c, RATING_ROWS, F.lit(min(new_users)) + F.col("_n")), k, [("rating", F.lit(6))]
    )
    duplicate = spark.table(c.table).orderBy(*c.key).limit(1).withColumn("_n", F.lit(RATING_ROWS))
    _append_batch(spark, c, rows.unionByName(duplicate), batch_id)


def _inject_content(spark: SparkSession, batch_id: str) -> None:
    c, k = CONTENT, PER_KIND["content"]
    rows = _with_defects(
        _copy_with_new_keys(spark, c, CONTENT_ROWS, F.format_string("cq%05d", F.col("_n"))),
        k,
        [
            ("title", F.lit(None).cast("string")),
            ("type", F.lit("podcast")),
            ("maturity_rating", F.lit("XXX")),
            ("release_year", F.lit(1800)),
            ("duration_minutes", F.lit(0)),
        ],
    )
    _append_batch(spark, c, rows, batch_id)


@pytest.fixture(scope="module")
def injected(spark, clean_gate: GateResult) -> dict:
    """Defective bronze batches on top of the clean state, recorded as the newest extracts."""
    ids = {table: f"injected-{table}-{uuid.uuid4().hex[:8]}" for table in CONTRACTS}
    sessions = _inject_sessions(spark, ids["viewing_sessions"])
    new_users = _inject_users(spark, ids["users"])
    _inject_ratings(spark, ids["ratings"], new_users)
    _inject_content(spark, ids["content"])
    records = [
        StepRecord("q-injected-extract", "extract", c.source_system, c.source_name, batch_id=ids[name]).finish(
            "succeeded"
        )
        for name, c in CONTRACTS.items()
    ]
    record_steps(spark, records)
    return {"batch_ids": ids, "sessions": sessions}


def _expected_failures() -> dict[tuple[str, str, str | None], int | None]:
    s, u, r, c = (PER_KIND[t] for t in ("viewing_sessions", "users", "ratings", "content"))
    return {
        ("viewing_sessions", NOT_NULL, "session_id"): 1,
        ("viewing_sessions", UNIQUE, "session_id"): 2 * DUPLICATED_SESSIONS,
        ("viewing_sessions", BETWEEN, "watch_seconds"): s,
        ("viewing_sessions", PAIR, "ended_at,started_at"): s,
        ("viewing_sessions", IN_SET, "device_type"): s,
        ("viewing_sessions", IN_SET, "streaming_quality"): s,
        ("viewing_sessions", IN_SET, "_quarantined"): QUARANTINED_SESSIONS,
        ("viewing_sessions", ROW_COUNT, None): None,
        ("users", IN_SET, "subscription_plan"): u,
        ("users", IN_SET, "billing_cycle"): u,
        ("users", IN_SET, "status"): u,
        ("users", BETWEEN, "birth_date"): u,
        ("ratings", BETWEEN, "rating"): r,
        ("ratings", COMPOUND_UNIQUE, "user_id,content_id"): 2,
        ("content", NOT_NULL, "title"): c,
        ("content", IN_SET, "type"): c,
        ("content", IN_SET, "maturity_rating"): c,
        ("content", BETWEEN, "release_year"): c,
        ("content", BETWEEN, "duration_minutes"): c,
    }


@pytest.fixture(scope="module")
def injected_gate(spark, services: Config, injected: dict) -> GateResult:
    config = dataclasses.replace(services, quality=dataclasses.replace(services.quality, max_batch_rows=MAX_BATCH_ROWS))
    return run_gate(spark, config, run_id="q-injected")


def test_each_critical_defect_kind_fails_with_its_count(injected_gate: GateResult, injected: dict) -> None:
    assert not injected_gate.passed
    assert {t: r.batch.batch_id for t, r in injected_gate.tables.items()} == injected["batch_ids"]
    assert _failures(injected_gate) == _expected_failures()
    row_count = next(o for o in injected_gate.failures if o.expectation == ROW_COUNT)
    assert row_count.observed_value == str(injected["sessions"]["rows"])


def test_the_message_names_expectation_column_count_and_keys(injected_gate: GateResult, injected: dict) -> None:
    summary = injected_gate.summary()
    assert summary.splitlines()[0].startswith(f"quality gate FAILED: {len(injected_gate.failures)} critical")
    section = summary.split("critical failures:")[1].split("warnings:")[0]
    for outcome in injected_gate.failures:
        assert describe(outcome) in section
    line = next(x for x in section.splitlines() if "viewing_sessions.watch_seconds [batch]" in x)
    assert BETWEEN in line and f"{PER_KIND['viewing_sessions']} unexpected" in line
    shown = line.split("example session_id: ")[1].split(", ")
    assert 0 < len(shown) <= 5 and set(shown) <= {str(k) for k in injected["sessions"]["negative"]}
    # The warning twins of failed critical checks are not repeated as warnings.
    assert not any(o.column == "watch_seconds" for o in injected_gate.warnings)


def test_stored_results_match_the_printed_failures(spark, injected_gate: GateResult, cli) -> None:
    stored = (
        spark.table(DQ_RESULTS_TABLE)
        .filter((F.col("run_id") == "q-injected") & (F.col("severity") == "critical") & ~F.col("success"))
        .collect()
    )
    assert {(r.table_name, r.expectation, r.column): r.unexpected_count for r in stored} == _failures(injected_gate)
    by_key = {(r.table_name, r.expectation, r.column): r for r in stored}
    for outcome in injected_gate.failures:
        row = by_key[(outcome.table, outcome.expectation, outcome.column)]
        assert row.example_keys == (", ".join(outcome.example_keys) or None)
        assert row.batch_id == outcome.batch_id
    steps = spark.table("ops.pipeline_runs").filter((F.col("run_id") == "q-injected") & (F.col("step") == "validate"))
    assert {r.source_table: r.status for r in steps.collect()} == dict.fromkeys(CONTRACTS, "failed")


# --------------------------------------------------------------------------- 4. the verdict sticks


@pytest.fixture(scope="module")
def sticky_gate(spark, services: Config, injected: dict, injected_gate: GateResult) -> GateResult:
    """The next run after the failed gate: its extract found nothing new (an empty batch each)."""
    ids = {table: f"empty-{table}-{uuid.uuid4().hex[:8]}" for table in CONTRACTS}
    records = [
        StepRecord("q-empty-extract", "extract", c.source_system, c.source_name, batch_id=ids[name], rows_read=0)
        for name, c in CONTRACTS.items()
    ]
    record_steps(spark, [r.finish("succeeded") for r in records])
    config = dataclasses.replace(services, quality=dataclasses.replace(services.quality, max_batch_rows=MAX_BATCH_ROWS))
    return run_gate(spark, config, run_id="q-sticky")


def test_a_failed_gate_stays_failed_after_an_empty_extract(sticky_gate: GateResult) -> None:
    """The empty batch does not pass the gate: the failed rows are still pending, every one."""
    assert not sticky_gate.passed, sticky_gate.summary()
    assert _failures(sticky_gate) == _expected_failures()
    assert sticky_gate.tables["viewing_sessions"].rows == SESSION_ROWS + DUPLICATED_SESSIONS + 1
    assert "what came after the last passed gate" in sticky_gate.summary()


def test_verdicts_record_what_each_table_was_validated_at(spark, sticky_gate: GateResult) -> None:
    verdicts = spark.table(VERDICTS_TABLE).filter(F.col("run_id").isin("q-clean", "q-injected", "q-sticky")).collect()
    by_run = {(r.run_id, r.source_table): r for r in verdicts}
    assert {k[0] for k in by_run} == {"q-clean", "q-injected", "q-sticky"}
    for table in CONTRACTS:
        assert by_run[("q-clean", table)].verdict == "passed"
        assert by_run[("q-sticky", table)].verdict == "failed"
        assert by_run[("q-sticky", table)].bronze_version == current_version(spark, table)
        assert by_run[("q-sticky", table)].rows_validated == sticky_gate.tables[table].rows


def test_transform_refuses_while_bronze_holds_rows_no_passed_gate_covers(
    spark, services: Config, sticky_gate: GateResult, cli
) -> None:
    with pytest.raises(GateNotPassed) as refused:
        validated_bronze_versions(services)
    message = str(refused.value)
    assert message.startswith(f"bronze.users holds {USER_ROWS:,} row(s) that no passed quality gate covers")
    # The pipeline asks the same before it would start Spark for the gate: the gate runs.
    assert unvalidated(services) == message.split("; ")[0]
    assert "last gate verdict: failed, run q-sticky" in message
    # Nothing changed since that gate failed: run again with its settings, it would fail again,
    # and the pipeline says so without Spark. Other settings (the defaults here) may pass: it runs.
    sticky = dataclasses.replace(services, quality=dataclasses.replace(services.quality, max_batch_rows=MAX_BATCH_ROWS))
    assert last_failure(sticky) == ("q-sticky", [])
    assert last_failure(services) == ("q-sticky", ["the rules (quality settings, suites, gate code or the UTC day)"])
    assert "(and 3 more tables: viewing_sessions, ratings, content)" in message
    assert "lakehouse quarantine" in message
    versions = {name: current_version(spark, name) for name in CONTRACTS}
    result = cli("transform", timeout=120)
    assert result.returncode == EXIT_REFUSED, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [f"transform: refused: {message}"]
    assert "dbt" not in result.stdout.lower()  # dbt never started
    assert {name: current_version(spark, name) for name in CONTRACTS} == versions


# --------------------------------------------------------------------------- 5. the operator's way forward


@pytest.fixture(scope="module")
def released_gate(spark, services: Config, injected: dict, sticky_gate: GateResult) -> tuple[GateResult, dict]:
    """The operator moves each injected batch to quarantine, accepts the sessions' quarantined rows."""
    moved = {
        table: move_to_quarantine(services, table, f"_batch_id = '{batch_id}'", "injected defects", run_id="q-op")
        for table, batch_id in injected["batch_ids"].items()
    }
    accepted = accept_quarantined(services, "viewing_sessions", "unreadable start times", run_id="q-op")
    # What the operator did is pending for the pipeline too: its next gate runs, not "still failed".
    assert unvalidated(services) is not None
    last_run, changes = last_failure(services)
    assert last_run == "q-sticky", changes
    for moved_to in ("bronze.content version ", "bronze.users version ", "the quarantine version "):
        assert any(change.startswith(moved_to) for change in changes), (moved_to, changes)
    return run_gate(spark, services, run_id="q-released"), {"moved": moved, "accepted": accepted}


def test_rows_moved_by_an_operator_are_in_quarantine_and_audited(spark, services: Config, released_gate: tuple) -> None:
    _result, done = released_gate
    moved = done["moved"]
    assert moved["viewing_sessions"].rows == SESSION_ROWS + DUPLICATED_SESSIONS + 1
    assert moved["users"].rows == USER_ROWS and moved["content"].rows == CONTENT_ROWS
    assert done["accepted"].rows == QUARANTINED_SESSIONS
    for table, batch in moved.items():
        assert spark.table(CONTRACTS[table].table).filter(F.col(BATCH_ID).startswith("injected-")).isEmpty()
        landed = spark.table(QUARANTINE_TABLE).filter(F.col("batch_id") == batch.batch_id)
        assert landed.count() == batch.rows, table
        assert landed.filter(~F.col("reason").startswith("quarantined by an operator: injected defects")).isEmpty()
    steps = spark.table("ops.pipeline_runs").filter((F.col("run_id") == "q-op") & (F.col("step") == "quarantine"))
    assert sorted((r.source_table, r.rows_quarantined) for r in steps.collect()) == sorted(
        [(t, b.rows) for t, b in moved.items()] + [("viewing_sessions", QUARANTINED_SESSIONS)]
    )
    with pytest.raises(QuarantineError, match=r"no row of bronze\.users matches"):
        move_to_quarantine(services, "users", "user_id < 0", "none")
    with pytest.raises(QuarantineError, match="--reason is required"):
        move_to_quarantine(services, "users", "user_id > 0", " ")


def test_after_the_operator_the_gate_passes_and_transform_may_read_bronze(
    spark, services: Config, released_gate: tuple
) -> None:
    result, _done = released_gate
    assert result.passed, result.summary()
    assert last_failure(services) == (None, [])  # the newest gate passed
    versions = validated_bronze_versions(services)
    assert versions == {name: current_version(spark, name) for name in CONTRACTS}
    # Nothing new since: the pipeline skips the gate without Spark, and says when bronze is stale.
    assert unvalidated(services) is None
    ages = ingest_age_hours(services)
    assert set(ages) == set(CONTRACTS) and all(0 <= age < 1 for age in ages.values()), ages
    stale = dataclasses.replace(services, quality=dataclasses.replace(services.quality, freshness_hours=1e-6))
    assert [w.split(":")[0] for w in freshness_warnings(stale)] == [f"bronze.{table}" for table in CONTRACTS]
    assert freshness_warnings(services) == []
    # Had it run, the gate would validate nothing and store no verdict.
    again = run_gate(spark, services, run_id="q-nothing-new")
    assert again.passed and all(run.skipped for run in again.tables.values()), again.summary()
    assert spark.table(VERDICTS_TABLE).filter(F.col("run_id") == "q-nothing-new").isEmpty()


def test_a_batch_whose_rows_were_all_quarantined_is_pending_for_the_pipeline_too(
    spark, services: Config, released_gate: tuple
) -> None:
    """No bronze row changed, but the extract quarantined rows since the last passed gate: the
    gate checks their share, so the pipeline's decision must not skip it (nor does the gate)."""
    assert unvalidated(services) is None
    users = CONTRACTS["users"]
    row = spark.range(1).select(
        F.lit(users.source_system).alias("source_system"),
        F.lit(users.source_name).alias("source_table"),
        F.lit("q-all-bad").alias("record_key"),
        F.lit("{}").alias("payload"),
        F.lit("birth_date: cannot read 'soon' as date").alias("reason"),
        F.sha2(F.lit("q-all-bad"), 256).alias("payload_sha256"),
        F.lit("q-all-bad").alias("batch_id"),
        F.current_timestamp().alias("quarantined_at"),
    )
    row.write.format("delta").mode("append").saveAsTable(QUARANTINE_TABLE)
    try:
        assert unvalidated(services) == f"{QUARANTINE_TABLE} holds 1 row(s) of users that no passed quality gate covers"
        [ref] = resolve_batches(spark, ["users"], None)
        assert has_pending(spark, ref)  # the gate's own answer, in Spark
    finally:
        spark.sql(f"delete from {QUARANTINE_TABLE} where batch_id = 'q-all-bad'")
    assert unvalidated(services) is None
