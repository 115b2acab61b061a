"""dbt silver and gold on the e2e stack's fresh Thrift server: the numbers, the next day, a rebuild.

The e2e stack's first run (``first_run``: a from-empty ``lakehouse pipeline --scale tiny``, seed
42, default defect rate) built silver and gold once; this module checks them rather than
building them a second time. Everything is read over the Thrift endpoint, as a BI tool reads it.
The module runs in phases (module fixtures, in file order):

1. the first run's dbt build was green. The marts are checked against numbers computed here,
   with pandas, straight from the generated source files the run loaded: rows that bronze
   quarantines and rows that silver rejects (documented in int_viewing_sessions_validated and
   int_ratings_validated) are excluded by their own rules here, not by reusing the models' SQL.
2. the snapshot runs twice more in a row, column comments are visible over JDBC, and
   ``dbt docs generate`` works.
3. ``lakehouse simulate --days 1`` plus late data and corrections (a user whose session was an
   orphan, a session turned invalid, one moved across midnight), then ``lakehouse pipeline``
   as a user runs it on the next day (extract, gate, transform, maintain; green again): it read
   only the new rows, gold grew, the snapshot records exactly the users whose tracked columns
   changed, their sessions link to the right version, the fact merged only the sessions that
   may have changed and took in the corrections, and the server
   (which has served the first run and many sessions since) missed no class: what a fresh
   machine's first ``make pipeline`` hit when hive-llap-common was not on its classpath.
4. a build whose dbt test fails publishes nothing (silver and gold unchanged, every object);
   bronze that lost rows since the last published build is rebuilt from scratch, and the fact
   it rebuilds equals the incremental merges' row for row; a transform with nothing new is
   skipped and rewrites nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pytest
from e2e_stack import Stack

from lakehouse.config import Config
from lakehouse.modeling.runner import (
    EXIT_OK,
    NodeResult,
    column_check_failures,
    dbt_target_dir,
    docs_generate,
    run_transform,
)
from lakehouse.services import thrift as thrift_service
from lakehouse.serving.sql_client import run_query, session

pytestmark = pytest.mark.e2e

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_FORMAT = "%Y-%m-%d"
MAX_SESSION_SECONDS = 86_400
RATING_RANGE = (1, 5)
PLANS = ("basic", "standard", "premium")
TRACKED = ["subscription_plan", "billing_cycle", "status", "country"]
TOLERANCE = 1e-6
MISSING_CLASS = ("NoClassDefFoundError", "ClassNotFoundException")
# A dashboard's date-range query, asked every few seconds while the next day's pipeline runs.
DASHBOARD_QUERY = "select min(activity_date), max(activity_date), count(*) from gold.mart_daily_kpis"
DASHBOARD_INTERVAL_SECONDS = 5
# The bound for it while dbt builds (the FAIR scheduler's bi pool; dbt runs in etl). Measured:
# see the README ("Concurrency").
DASHBOARD_BOUND_SECONDS = 30


def _frame(stack: Stack, sql: str) -> pd.DataFrame:
    """A query's result over the stack's Thrift endpoint, as a BI tool gets it."""
    result = run_query(stack.config, sql)
    return pd.DataFrame(result.rows, columns=result.columns)


def _value(stack: Stack, sql: str) -> Any:
    return stack.query(sql)[0][0]


# --------------------------------------------------------------------------- expectations from the files


def _read_csv(path: Path) -> pd.DataFrame:
    """A generated CSV as text columns; only an empty field is null."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _timestamps(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format=TIMESTAMP_FORMAT, errors="coerce", utc=True)


def _newest_per_key(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """What bronze's MERGE keeps: one row per key, the newest updated_at."""
    ordered = frame.assign(_updated=_timestamps(frame["updated_at"])).sort_values("_updated", kind="stable")
    return ordered.drop_duplicates(key, keep="last").drop(columns="_updated")


def _bronze_user_ids(data_dir: Path) -> set[int]:
    """Users that pass bronze: a key, a readable birth date (or none) and updated_at."""
    users = _read_csv(data_dir / "users.csv")
    birth = pd.to_datetime(users["birth_date"], format=DATE_FORMAT, errors="coerce")
    readable = users["user_id"].notna() & (users["birth_date"].isna() | birth.notna())
    readable &= _timestamps(users["updated_at"]).notna()
    return set(users.loc[readable, "user_id"].astype(int))


def _is_int_or_absent(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and not pd.isna(pd.to_datetime(value, format=TIMESTAMP_FORMAT, errors="coerce"))


def _bronze_content_ids(data_dir: Path) -> set[str]:
    """Titles that pass bronze: numbers where numbers belong, readable timestamps."""
    ids = set()
    for line in (data_dir / "content.jsonl").read_text(encoding="utf-8").splitlines():
        document = json.loads(line)
        if (
            document.get("_id") is not None
            and _is_timestamp(document.get("updated_at"))
            and (document.get("added_at") is None or _is_timestamp(document["added_at"]))
            and _is_int_or_absent(document.get("release_year"))
            and _is_int_or_absent(document.get("duration_minutes"))
        ):
            ids.add(document["_id"])
    return ids


@dataclass(frozen=True)
class Expected:
    """What silver and gold must hold, computed from the generated files."""

    sessions: pd.DataFrame  # valid sessions: user_id, content_id, started, watch_seconds, completed, device_type
    ratings: pd.DataFrame  # valid ratings: user_id, content_id, rating


def _expected(data_dir: Path) -> Expected:
    users, titles = _bronze_user_ids(data_dir), _bronze_content_ids(data_dir)

    sessions = _read_csv(data_dir / "viewing_sessions.csv")
    sessions = sessions[sessions["session_id"].notna() & _timestamps(sessions["started_at"]).notna()]
    sessions = _newest_per_key(sessions, ["session_id"])
    started, ended = _timestamps(sessions["started_at"]), _timestamps(sessions["ended_at"])
    watch = sessions["watch_seconds"].astype(int)
    span = (ended - started).dt.total_seconds()
    valid = (
        sessions["user_id"].astype(float).isin(users)
        & sessions["content_id"].isin(titles)
        & (watch >= 0)
        & (watch <= MAX_SESSION_SECONDS)
        & (ended >= started)
        & (watch <= span)
    )
    sessions = pd.DataFrame(
        {
            "user_id": sessions["user_id"].astype(float).astype("int64"),
            "content_id": sessions["content_id"],
            "started": started,
            "watch_seconds": watch,
            "completed": sessions["completed"].str.lower() == "true",
            "device_type": sessions["device_type"],
        }
    )[valid]

    ratings = _read_csv(data_dir / "ratings.csv")
    ratings = ratings[ratings["user_id"].notna() & ratings["content_id"].notna()]
    ratings = _newest_per_key(ratings, ["user_id", "content_id"])
    rating = ratings["rating"].astype(int)
    valid = (
        ratings["user_id"].astype(int).isin(users) & ratings["content_id"].isin(titles) & rating.between(*RATING_RANGE)
    )
    ratings = pd.DataFrame(
        {"user_id": ratings["user_id"].astype(int), "content_id": ratings["content_id"], "rating": rating}
    )[valid]
    return Expected(sessions=sessions, ratings=ratings)


# --------------------------------------------------------------------------- phases


@dataclass
class Build:
    config: Config
    data_dir: Path
    log: str  # the first run's output, dbt's lines included


def _transform(config: Config, **kwargs: Any) -> tuple[int, str, float]:
    """run_transform with its output captured (shown in the assertion message on failure)."""
    buffer = io.StringIO()
    started = time.monotonic()
    code = run_transform(config, output=buffer, errors=buffer, **kwargs)
    return code, buffer.getvalue(), time.monotonic() - started


def _tail(log: str, lines: int = 60) -> str:
    return "\n".join(log.splitlines()[-lines:])


@pytest.fixture(scope="module")
def built(stack: Stack, first_run: str) -> Build:
    """The first run's build: its log, and the files the run generated and loaded."""
    return Build(stack.config, stack.config.home / "data" / "tiny", first_run)


@pytest.fixture(scope="module")
def expected(built: Build) -> Expected:
    return _expected(built.data_dir)


def _tracked_columns(stack: Stack) -> pd.DataFrame:
    """bronze.users' tracked columns, normalised as stg_postgres__users does."""
    frame = _frame(stack, f"select user_id, {', '.join(TRACKED)}, updated_at from bronze.users").set_index("user_id")
    for column in ("subscription_plan", "billing_cycle", "status"):
        frame[column] = frame[column].str.strip().str.lower()
    frame["country"] = frame["country"].str.strip().str.upper()
    frame.loc[~frame["subscription_plan"].isin(PLANS), "subscription_plan"] = "unknown"
    return frame


@dataclass
class Dashboard:
    """A BI client on a thread of its own: DASHBOARD_QUERY every few seconds until stopped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.answers: list[tuple[float, float, str | None]] = []  # (epoch started, seconds, error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started, clock = time.time(), time.monotonic()
            try:
                self.stack.query(DASHBOARD_QUERY)
                error = None
            except Exception as exc:  # every failure is recorded and fails the test
                error = f"{type(exc).__name__}: {exc}"[:300]
            self.answers.append((started, time.monotonic() - clock, error))
            self._stop.wait(DASHBOARD_INTERVAL_SECONDS)

    def __enter__(self) -> Dashboard:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=600)


@dataclass(frozen=True)
class Corrections:
    """What the source changed besides the simulated day: late data and corrections of the past."""

    orphan_session: int  # a session whose user was missing, so the fact left it out
    arrived_user: int  # ... and that user, now inserted into the source
    invalidated: int  # a session in the fact that the source made invalid (negative watch time)
    moved: int  # a session in the fact whose start the source moved one day back
    moved_to: dt.date


def _day_before(column: str) -> str:
    return f"""to_char(({column}::timestamptz - interval '1 day') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


def correct_the_sources(config: Config, query: Callable[[str], list[tuple]]) -> Corrections:
    """A late-arriving user, a session turned invalid and one moved across midnight, stamped
    just after the newest source change so that the next extract reads them."""
    [(orphan_session, arrived_user)] = query(
        "select session_id, user_id from silver.int_viewing_sessions_validated "
        "where dq_issue = 'orphan_user_id' order by session_id limit 1"
    )
    invalidated, moved = (
        row[0] for row in query("select session_id from gold.fct_viewing_sessions order by session_id limit 2")
    )
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns where table_name = 'users' order by ordinal_position"
        )
        columns = [row[0] for row in cur.fetchall()]
        values = {
            "user_id": "%(user)s",
            "email": "'late-arrival-' || %(user)s || '@example.com'",
            "updated_at": "(select max(updated_at) from users) + interval '1 second'",
        }
        select = ", ".join(values.get(column, column) for column in columns)
        cur.execute(
            f"insert into users ({', '.join(columns)}) select {select} from users "
            "where user_id = (select min(user_id) from users)",
            {"user": arrived_user},
        )
        stamp = "(select max(updated_at) from viewing_sessions) + interval '1 second'"
        cur.execute(
            f"update viewing_sessions set watch_seconds = -5, updated_at = {stamp} where session_id = %s",
            (invalidated,),
        )
        cur.execute(
            # started_at and ended_at are the devices' ISO-8601 strings in the source.
            f"update viewing_sessions set started_at = {_day_before('started_at')}, "
            f"ended_at = {_day_before('ended_at')}, updated_at = {stamp} "
            "where session_id = %s returning (started_at::timestamptz at time zone 'UTC')::date",
            (moved,),
        )
        [(moved_to,)] = cur.fetchall()
    return Corrections(orphan_session, arrived_user, invalidated, moved, moved_to)


@dataclass
class Simulated:
    config: Config
    changed_users: set[int]
    users_after: pd.DataFrame
    fact_watermark_before: Any
    fact_rows_before: int
    fact_max_started_before: Any
    fact_users_seen_before: str  # the newest user and title ingest times the fact's last run read
    fact_content_seen_before: str
    source_sessions: int
    corrections: Corrections
    code: int
    log: str
    seconds: float
    dashboard: list[tuple[float, float, str | None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def simulated(built: Build, stack: Stack) -> Simulated:
    config = built.config
    before = _tracked_columns(stack)
    watermark, max_started, rows_before = stack.query(
        "select max(_ingested_at), max(started_at), count(*) from gold.fct_viewing_sessions"
    )[0]
    recorded = dict(stack.query("show tblproperties gold_build.fct_viewing_sessions"))

    # The maintain step VACUUMs a table at most daily (a week's retention): the fact's change
    # feed must still tell the incremental marts which days changed after it.
    stack.query("vacuum gold_build.fct_viewing_sessions")
    result = stack.run("simulate", "--days", "1")
    assert result.returncode == 0, result.stderr
    corrections = correct_the_sources(config, stack.query)
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from viewing_sessions")
        source_sessions = cur.fetchone()[0]
    # The next day as a user runs it: the whole pipeline (its services are already up), while
    # a dashboard keeps asking gold.
    started = time.monotonic()
    with Dashboard(stack) as dashboard:
        pipeline = stack.pipeline()
    seconds = time.monotonic() - started
    log = pipeline.stdout + pipeline.stderr

    after = _tracked_columns(stack)
    common = before.index.intersection(after.index)
    differs = (before.loc[common, TRACKED] != after.loc[common, TRACKED]).any(axis=1)
    changed = set(differs[differs].index.astype(int))
    return Simulated(
        config,
        changed,
        after,
        watermark,
        rows_before,
        max_started,
        recorded["lakehouse.high_water.stg_postgres__users"],
        recorded["lakehouse.high_water.stg_mongodb__content"],
        source_sessions,
        corrections,
        pipeline.returncode,
        log,
        seconds,
        dashboard.answers,
    )


# --------------------------------------------------------------------------- phase 1: build and numbers


def test_build_is_green(built: Build) -> None:
    assert "Completed successfully" in built.log, _tail(built.log)
    done = next(line for line in built.log.splitlines() if "Done. PASS=" in line)
    counts = {key: int(value) for key, value in (item.split("=") for item in done.split("Done. ")[1].split())}
    # 23 models, the snapshot and 31 tests (a model's column checks are one test, the fact's two).
    assert counts["TOTAL"] > 40 and counts["PASS"] + counts["WARN"] == counts["TOTAL"], done


# One violation of each kind column_checks makes, and the nulls its checks must let pass: rows
# shaped like stg_postgres__users (not_null, unique, accepted_values, accepted_range) ...
SEEDED_USERS = """(values
    (1, 'basic', 'active', 'monthly', 9.99),
    (1, 'gold', 'active', 'annual', 0.0),
    (cast(null as bigint), cast(null as string), 'paused', cast(null as string), -1.0)
  ) as seeded(user_id, subscription_plan, subscription_status, billing_cycle, monthly_price_usd)"""
# ... and like fct_ratings, from one of its real rows (unique_combination, relationships).
SEEDED_RATINGS = """(
    with one as (select * from gold_build.fct_ratings limit 1)
    select rating_id, user_sk, content_sk, rating, user_id, content_id, rated_date from one
    union all
    select rating_id, 'no-such-user', content_sk, 9, user_id, content_id, rated_date from one
    union all
    select null, user_sk, null, rating, -1, content_id, date'1800-01-01' from one
  )"""
SEEDED = {
    "stg_postgres__users": (
        "silver_build.stg_postgres__users",
        SEEDED_USERS,
        [
            "stg_postgres__users.monthly_price_usd: accepted_range, 1 row",
            "stg_postgres__users.subscription_plan: accepted_values, 1 row",
            "stg_postgres__users.subscription_plan: not_null, 1 row",
            "stg_postgres__users.user_id: not_null, 1 row",
            "stg_postgres__users.user_id: unique, 1 row",
        ],
    ),
    "fct_ratings": (
        "gold_build.fct_ratings",
        SEEDED_RATINGS,
        [
            "fct_ratings.content_sk: not_null, 1 row",
            "fct_ratings.rated_date: relationships, 1 row",
            "fct_ratings.rating: accepted_range, 1 row",
            "fct_ratings.rating_id: not_null, 1 row",
            "fct_ratings.rating_id: unique, 1 row",
            "fct_ratings.user_id, content_id: unique_combination, 1 row",
            "fct_ratings.user_sk: relationships, 1 row",
        ],
    ),
}


@pytest.mark.parametrize("model", sorted(SEEDED))
def test_column_checks_name_the_model_column_and_check_of_every_violation(
    built: Build, stack: Stack, model: str
) -> None:
    """A model's column checks, as dbt compiled them for the build, over seeded rows: the
    runner names every violation with its count, and only those (a null passes
    accepted_values, accepted_range and relationships; unique ignores nulls)."""
    relation, seeded, expected = SEEDED[model]
    compiled = next((dbt_target_dir(stack.config) / "compiled").rglob(f"{model}_column_checks.sql"))
    sql = compiled.read_text()
    assert relation in sql, sql
    node = NodeResult(f"test.lakehouse.{model}_column_checks.x", "fail", "Got results", sql.replace(relation, seeded))
    assert column_check_failures(stack.config, node) == expected


def test_the_dbt_unit_tests_pass_on_their_own_and_no_build_runs_them(built: Build, stack: Stack) -> None:
    """The unit tests check the SQL's logic on mocked inputs: `make test` runs them here, once
    (`lakehouse transform --unit-tests`), and the pipeline's builds leave them out."""
    assert "START test " in built.log and "START unit_test " not in built.log, _tail(built.log)
    target = dbt_target_dir(stack.config)
    result = stack.run("transform", "--unit-tests", timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ran = json.loads((target / "run_results.json").read_text())["results"]
    declared = json.loads((target / "manifest.json").read_text())["unit_tests"]
    assert len(declared) >= 3
    assert {r["unique_id"] for r in ran} == set(declared)
    assert {r["status"] for r in ran} == {"pass"}


def test_daily_kpis_equal_the_source_files(stack: Stack, expected: Expected) -> None:
    kpis = _frame(
        stack, "select grain, activity_date, device_type, sessions, active_users, watch_hours from gold.mart_daily_kpis"
    )
    kpis["activity_date"] = pd.to_datetime(kpis["activity_date"]).dt.date
    kpis["watch_hours"] = kpis["watch_hours"].astype(float)
    sessions = expected.sessions.assign(activity_date=expected.sessions["started"].dt.date)

    overall = kpis[kpis["grain"] == "overall"].set_index("activity_date").sort_index()
    days = sessions.groupby("activity_date").agg(
        sessions=("user_id", "size"), active_users=("user_id", "nunique"), watch_seconds=("watch_seconds", "sum")
    )
    assert list(overall.index) == list(days.index)
    assert overall["sessions"].tolist() == days["sessions"].tolist()
    assert overall["active_users"].tolist() == days["active_users"].tolist()
    assert overall["watch_hours"].to_numpy() == pytest.approx((days["watch_seconds"] / 3600).to_numpy(), rel=TOLERANCE)

    assert int(overall["sessions"].sum()) == len(sessions)
    assert overall["watch_hours"].sum() == pytest.approx(sessions["watch_seconds"].sum() / 3600, rel=TOLERANCE)

    by_device = kpis[kpis["grain"] == "device"].groupby("device_type")["sessions"].sum().to_dict()
    assert by_device == sessions.groupby("device_type").size().to_dict()


def test_content_performance_equals_the_source_files(stack: Stack, expected: Expected) -> None:
    performance = _frame(stack, "select * from gold.mart_content_performance").set_index("content_id")
    per_title = expected.sessions.groupby("content_id").agg(
        sessions=("user_id", "size"), unique_viewers=("user_id", "nunique"), completion_rate=("completed", "mean")
    )
    ratings = expected.ratings.groupby("content_id")["rating"].agg(["mean", "size"])

    top = per_title.sort_values("sessions", ascending=False).index[:5].tolist()
    for content_id in [*top, *per_title.index[::50]]:
        row = performance.loc[content_id]
        assert row["sessions"] == per_title.loc[content_id, "sessions"], content_id
        assert row["unique_viewers"] == per_title.loc[content_id, "unique_viewers"], content_id
        assert float(row["completion_rate"]) == pytest.approx(per_title.loc[content_id, "completion_rate"]), content_id
        if content_id in ratings.index:
            assert row["rating_count"] == ratings.loc[content_id, "size"], content_id
            assert float(row["avg_rating"]) == pytest.approx(ratings.loc[content_id, "mean"]), content_id
    # Every title, not only the sampled ones: sessions and ratings add up.
    assert int(performance["sessions"].sum()) == len(expected.sessions)
    assert int(performance["rating_count"].sum()) == len(expected.ratings)


def test_snapshot_runs_three_times_in_a_row(built: Build, stack: Stack) -> None:
    versions_before = _value(stack, "select count(*) from silver.snap_users")
    code, log, _seconds = _transform(built.config, select="snap_users", run_id="e2e-dbt-snapshot-2")
    assert code == EXIT_OK, f"second snapshot run:\n{_tail(log)}"
    # The third time as a user would: `lakehouse transform --select snap_users`.
    result = stack.run("transform", "--select", "snap_users")
    assert result.returncode == 0, f"third snapshot run:\n{_tail(result.stdout)}\n{result.stderr}"
    assert "OK snapshotted silver_build.snap_users" in result.stdout
    assert "transform: published 1 tables and 0 views" in result.stdout  # what it built, nothing else
    # Nothing changed in between: no new version.
    assert _value(stack, "select count(*) from silver.snap_users") == versions_before
    assert _value(stack, "select count(distinct user_id) from silver.snap_users") == versions_before
    columns = _frame(stack, "select * from silver.snap_users limit 1").columns
    assert not {"dbt_change_type", "dbt_unique_key"} & set(columns)


def test_column_descriptions_reach_jdbc_clients(stack: Stack) -> None:
    result = stack.run("sql", "describe gold.dim_users", "--format", "json")
    assert result.returncode == 0, result.stderr
    comments = {row["col_name"]: row["comment"] for row in json.loads(result.stdout)}
    assert comments["user_sk"].startswith("Surrogate key of one version of a user")
    assert comments["valid_to"].startswith("End of the version")
    result = stack.run("sql", "describe table extended gold.fct_viewing_sessions", "--format", "json")
    assert result.returncode == 0, result.stderr
    table_comment = next(row["data_type"] for row in json.loads(result.stdout) if row["col_name"] == "Comment")
    assert "Grain: one row per valid session" in table_comment


# UTC+14: a session that starts after 10:00 UTC falls on the next day there.
READER_TIME_ZONE = "Pacific/Kiritimati"


def test_silver_staging_views_give_the_utc_day_whatever_the_readers_time_zone(stack: Stack) -> None:
    """silver.stg_* are views: a BI tool whose session sets another time zone must still see
    the UTC day that gold's tables hold. (Spark evaluates a view with the session settings it
    was created with, dbt's UTC; this keeps it so.)"""
    with session(stack.config) as run:
        run(f"set spark.sql.session.timeZone={READER_TIME_ZONE}")
        assert run("select current_timezone()").rows == [(READER_TIME_ZONE,)]
        # The reader's own cast gives another day for many sessions: the zone matters here.
        [(other_day,)] = run(
            "select count_if(cast(started_at as date) <> session_date) from gold.fct_viewing_sessions"
        ).rows
        assert other_day > 0
        sessions = run(
            "select count(*), count_if(staged.session_date <> fact.session_date)"
            " from silver.stg_postgres__viewing_sessions staged"
            " join gold.fct_viewing_sessions fact on staged.session_id = fact.session_id"
        ).rows[0]
        ratings = run(
            "select count(*), count_if(staged.rated_date <> fact.rated_date)"
            " from silver.stg_postgres__ratings staged join gold.fct_ratings fact"
            " on staged.user_id = fact.user_id and staged.content_id = fact.content_id"
        ).rows[0]
    assert sessions[0] > 100 and sessions[1] == 0, f"sessions joined, on another day: {sessions}"
    assert ratings[0] > 100 and ratings[1] == 0, f"ratings joined, on another day: {ratings}"


def test_docs_generate_works(built: Build) -> None:
    docs = docs_generate(built.config, output=io.StringIO())
    assert (docs / "index.html").exists()
    assert (docs / "static_index.html").exists()
    catalog = json.loads((docs / "catalog.json").read_text())
    columns = catalog["nodes"]["model.lakehouse.fct_viewing_sessions"]["columns"]
    assert {"session_id", "user_sk", "session_date", "watch_seconds"} <= {c.lower() for c in columns}


# --------------------------------------------------------------------------- phase 2: after simulate


def test_incremental_build_is_green(simulated: Simulated) -> None:
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    print(f"incremental pipeline: {simulated.seconds:.0f} s")


def test_the_server_missed_no_class_in_its_whole_life(simulated: Simulated, stack: Stack) -> None:
    """What a fresh machine's first `make pipeline` hit: a session close in a server without
    hive-llap-common threw NoClassDefFoundError, and every later close hung. By now this server
    has served two pipelines' dbt builds, snapshots, docs and many client sessions."""
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    log = thrift_service.log_file(stack.config).read_text(errors="replace")
    assert [line for line in log.splitlines() if any(name in line for name in MISSING_CLASS)] == []


def test_a_dashboard_is_answered_while_dbt_builds(simulated: Simulated, stack: Stack) -> None:
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    run_id = next(line.split()[1] for line in simulated.log.splitlines() if line.startswith("run "))
    start, end = stack.query(
        "select unix_timestamp(started_at), unix_timestamp(ended_at) from ops.pipeline_runs "
        f"where run_id = '{run_id}' and step = 'transform' and source_table is null"
    )[0]
    during = [answer for answer in simulated.dashboard if start <= answer[0] <= end]
    seconds = sorted(answer[1] for answer in during)
    print(f"dashboard during a {end - start} s dbt build: {len(during)} answers, seconds {seconds}")
    assert len(during) >= 3, f"the dashboard asked {len(during)} times during the build"
    assert [answer[2] for answer in simulated.dashboard if answer[2]] == []
    assert seconds[-1] <= DASHBOARD_BOUND_SECONDS


def test_the_next_days_pipeline_reads_only_new_rows_and_gold_grows(simulated: Simulated, stack: Stack) -> None:
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    assert "sources already loaded" in simulated.log
    run_id = next(line.split()[1] for line in simulated.log.splitlines() if line.startswith("run "))
    audit = _frame(
        stack, f"select step, source_table, status, rows_read from ops.pipeline_runs where run_id = '{run_id}'"
    )
    sessions = audit[(audit["step"] == "extract") & (audit["source_table"] == "viewing_sessions")]
    assert 0 < int(sessions["rows_read"].iloc[0]) < simulated.source_sessions * 0.2
    steps = dict(audit.loc[audit["source_table"].isna(), ["step", "status"]].itertuples(index=False))
    assert steps == dict.fromkeys(
        ["up", "sources", "extract", "validate", "transform", "maintain", "pipeline"], "succeeded"
    )
    newer = f"max(started_at) > timestamp'{simulated.fact_max_started_before}'"
    rows_after, grew = stack.query(f"select count(*), {newer} from gold.fct_viewing_sessions")[0]
    assert rows_after > simulated.fact_rows_before
    assert grew is True


def test_snapshot_records_exactly_the_users_whose_tracked_columns_changed(simulated: Simulated, stack: Stack) -> None:
    assert simulated.changed_users, "simulate changed no plan, billing, status or country"
    versions = _frame(stack, "select user_id, count(*) as versions from silver.snap_users group by user_id")
    versioned = set(versions.loc[versions["versions"] > 1, "user_id"].astype(int))
    assert versioned == simulated.changed_users
    assert versions.loc[versions["user_id"].isin(versioned), "versions"].eq(2).all()

    current = _frame(
        stack, "select user_id, dbt_valid_from, subscription_plan from silver.snap_users where dbt_valid_to is null"
    ).set_index("user_id")
    for user_id in versioned:
        assert current.loc[user_id, "dbt_valid_from"] == simulated.users_after.loc[user_id, "updated_at"]
        assert current.loc[user_id, "subscription_plan"] == simulated.users_after.loc[user_id, "subscription_plan"]
    # ... from an input of the users ingested since its previous run, not every user.
    results = json.loads((dbt_target_dir(stack.config) / "run_results.json").read_text())["results"]
    compiled = next(r["compiled_code"] for r in results if r["unique_id"] == "snapshot.lakehouse.snap_users")
    assert re.search(r"where _ingested_at > timestamp'[^']+'", compiled), compiled


def test_sessions_of_a_changed_user_link_to_the_version_valid_at_start(simulated: Simulated, stack: Stack) -> None:
    # The window test runs in Spark: valid_to 9999-12-31 does not fit a pandas timestamp.
    linked = _frame(
        stack,
        """
        select
            sessions.user_id,
            sessions.started_at,
            users.version_number,
            users.valid_from,
            sessions.started_at >= users.valid_from and sessions.started_at < users.valid_to as is_in_window
        from gold.fct_viewing_sessions as sessions
        inner join gold.dim_users as users
            on sessions.user_sk = users.user_sk
        """,
    )
    linked = linked[linked["user_id"].isin(simulated.changed_users)]
    linked = linked.assign(
        started_at=pd.to_datetime(linked["started_at"]), valid_from=pd.to_datetime(linked["valid_from"])
    )
    assert linked["is_in_window"].all()
    # Users that watched both before and after their change link to version 1, then version 2.
    both = linked.groupby("user_id")["version_number"].nunique()
    assert (both == 2).any(), "no changed user watched both before and after the change"
    for user_id in both[both == 2].index:
        sessions = linked[linked["user_id"] == user_id].sort_values("started_at")
        change = sessions.loc[sessions["version_number"] == 2, "valid_from"].iloc[0]
        assert (sessions.loc[sessions["started_at"] < change, "version_number"] == 1).all()
        assert (sessions.loc[sessions["started_at"] >= change, "version_number"] == 2).all()


def _newest_merge(stack: Stack) -> dict[str, Any] | None:
    """The newest MERGE in the fact's Delta history: its metrics and parameters (JSON over Thrift)."""
    history = _frame(stack, "describe history gold_build.fct_viewing_sessions")
    merges = history[history["operation"] == "MERGE"].sort_values("version", ascending=False)
    if merges.empty:
        return None
    newest = merges.iloc[0]
    return {"metrics": json.loads(newest["operationMetrics"]), "parameters": newest["operationParameters"]}


def test_fact_merge_was_offered_only_the_sessions_that_change_it(simulated: Simulated, stack: Stack) -> None:
    """The run looks at the sessions that may have changed (new ones, ones the source updated,
    every session of a user or title ingested since the fact's last run read them) and gives
    the MERGE only those that change the fact: a session of a changed user that links to the
    same version as before is left out, so Delta rewrites the files of a few days, not the
    fact."""

    def since(moment: Any) -> str:
        return f"_ingested_at > timestamp'{moment}'"

    candidates = _value(
        stack,
        f"""
        select count(*) from silver.int_viewing_sessions_validated
        where {since(simulated.fact_watermark_before)}
            or user_id in (
                select user_id from silver.stg_postgres__users where {since(simulated.fact_users_seen_before)}
            )
            or content_id in (
                select content_id from silver.stg_mongodb__content where {since(simulated.fact_content_seen_before)}
            )
        """,
    )
    merge = _newest_merge(stack)
    assert merge is not None, "the incremental run did not MERGE"
    metrics = {key: int(value) for key, value in merge["metrics"].items()}
    offered, inserted = metrics["numSourceRows"], metrics["numTargetRowsInserted"]
    updated, deleted = metrics["numTargetRowsUpdated"], metrics["numTargetRowsDeleted"]
    assert 0 < candidates < simulated.fact_rows_before
    assert offered == inserted + updated + deleted, metrics  # every row offered changed the fact
    assert 0 < offered < candidates, (offered, candidates)  # sessions that link as before were not
    assert updated > 0  # sessions the source updated after the fact
    assert deleted >= 1  # the session the source made invalid
    fact_rows = _value(stack, "select count(*) from gold.fct_viewing_sessions")
    assert fact_rows == simulated.fact_rows_before + inserted - deleted
    days = _value(stack, "select count(distinct session_date) from gold.fct_viewing_sessions")
    assert metrics["numTargetFilesRemoved"] < days / 2, (metrics["numTargetFilesRemoved"], days)


def test_late_users_invalidations_and_moved_sessions_reach_the_fact(simulated: Simulated, stack: Stack) -> None:
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    fixed = simulated.corrections
    rows = stack.query(
        "select session_id, cast(session_date as string), user_sk is not null from gold.fct_viewing_sessions "
        f"where session_id in ({fixed.orphan_session}, {fixed.invalidated}, {fixed.moved})"
    )
    by_id = {row[0]: (row[1], row[2]) for row in rows}
    assert len(rows) == len(by_id) == 2, rows  # no second row for the moved session
    assert fixed.invalidated not in by_id  # the source made it invalid: deleted
    assert by_id[fixed.moved] == (fixed.moved_to.isoformat(), True)  # on its new day
    assert by_id[fixed.orphan_session][1] is True  # its user arrived: valid, and linked to it
    assert _value(stack, f"select count(*) from gold.dim_users where user_id = {fixed.arrived_user}") == 1


def test_the_days_merges_keep_column_comments_without_re_committing_them(simulated: Simulated, stack: Stack) -> None:
    """dbt-spark re-comments every column after every build: one more Delta commit per
    incremental model per run. The comments an incremental table keeps are left alone
    (dbt/macros/persist_docs.sql): nothing after the day's MERGE of the fact re-commented it,
    and its columns still carry their descriptions."""
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    history = _frame(stack, "describe history gold_build.fct_viewing_sessions").sort_values("version")
    merges = history[history["operation"] == "MERGE"]
    assert not merges.empty
    since_merge = history[history["version"] > merges["version"].max()]
    assert "CHANGE COLUMNS" not in set(since_merge["operation"]), since_merge[["version", "operation"]]
    comments = {row[0]: row[2] for row in stack.query("describe gold_build.fct_viewing_sessions")}
    assert comments["session_id"], "the fact lost its column comments"


@pytest.mark.parametrize("mart", ["mart_daily_kpis", "mart_hourly_activity"])
def test_daily_marts_recompute_only_the_days_the_fact_changed(simulated: Simulated, stack: Stack, mart: str) -> None:
    """mart_daily_kpis and mart_hourly_activity are incremental: the days their run recomputed
    come from the fact's change data feed: the new day, the day the moved session left and the
    one it joined, the day of the invalidated session; not the whole history. (That the result
    equals a full rebuild is
    test_bronze_that_lost_rows_is_rebuilt_and_gives_the_fact_of_the_incremental_merges.)"""
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    compiled = dbt_target_dir(stack.config) / "compiled" / "lakehouse" / "models" / "marts" / "analytics"
    days_filter = re.search(r"where session_date in \(([^)]*)\)", (compiled / f"{mart}.sql").read_text())
    assert days_filter, "the day's run recomputed every day"
    recomputed = set(re.findall(r"date'(\d{4}-\d{2}-\d{2})'", days_filter.group(1)))
    fixed = simulated.corrections
    invalidated_day = _value(
        stack,
        "select cast(session_date as string) from silver.int_viewing_sessions_validated "
        f"where session_id = {fixed.invalidated}",
    )
    left_day = (fixed.moved_to + dt.timedelta(days=1)).isoformat()
    assert {fixed.moved_to.isoformat(), left_day, invalidated_day} <= recomputed, sorted(recomputed)
    newest_day = _value(stack, "select cast(max(session_date) as string) from gold.fct_viewing_sessions")
    assert newest_day in recomputed
    all_days = _value(stack, f"select count(distinct activity_date) from gold.{mart}")
    assert len(recomputed) < all_days / 4, (len(recomputed), all_days)

    # One write replaced those days (incremental_strategy='replace_where'), not the table.
    history = _frame(stack, f"describe history gold_build.{mart}")
    writes = history[history["operation"] == "WRITE"]["operationParameters"].astype(str)
    assert writes.str.contains("activity_date IN").any(), list(history["operation"])
    properties = dict(stack.query(f"show tblproperties gold_build.{mart}"))
    recorded = int(properties["lakehouse.upstream_version.fct_viewing_sessions"])
    assert recorded <= _build_version(stack, "gold_build.fct_viewing_sessions")


FACT_CHECKS = ("compiled", "lakehouse", "models", "marts", "core", "_core__models.yml")


def _days_in(sql: str) -> set[str] | None:
    """The days of a compiled `where session_date in (date'...', ...)`; None without one."""
    found = re.search(r"where session_date in \(([^)]*)\)", sql)
    return set(re.findall(r"date'(\d{4}-\d{2}-\d{2})'", found.group(1))) if found else None


def test_the_facts_row_checks_read_only_the_days_its_merge_wrote(simulated: Simulated, stack: Stack) -> None:
    """On the day's run the fact's row-level checks (not_null, accepted_values, accepted_range:
    fct_viewing_sessions_partition_checks, dbt/macros/partition_tests.sql) read exactly the
    session_date partitions the day's MERGE inserted or updated rows in (every other row is in
    the published version, which passed them); its unique and relationships checks read every
    row."""
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    compiled = dbt_target_dir(stack.config).joinpath(*FACT_CHECKS)
    checked = _days_in((compiled / "fct_viewing_sessions_partition_checks.sql").read_text())
    assert checked is not None, "the day's row checks read every partition"
    merge = _frame(stack, "describe history gold_build.fct_viewing_sessions")
    version = int(merge[merge["operation"] == "MERGE"]["version"].max())
    written = {
        str(row[0])
        for row in stack.query(
            "select distinct cast(session_date as string) from "
            f"table_changes('gold_build.fct_viewing_sessions', {version}, {version}) "
            "where _change_type in ('insert', 'update_postimage')"
        )
    }
    assert checked == written
    all_days = _value(stack, "select count(distinct session_date) from gold.fct_viewing_sessions")
    assert 0 < len(checked) < all_days / 4, (len(checked), all_days)
    assert "dbt_subquery" not in (compiled / "fct_viewing_sessions_column_checks.sql").read_text()  # every row


# --------------------------------------------------------------------------- phase 3: failed build, rebuild, no-op


PODCAST_ID = "e2e-podcast"


def _build_version(stack: Stack, relation: str) -> int:
    return max(row[0] for row in stack.query(f"describe history {relation}"))


def test_a_bad_fact_row_written_since_the_published_version_fails_every_build_until_it_is_gone(
    simulated: Simulated, stack: Stack
) -> None:
    """The scoped row checks see every row written since the published version, whatever wrote
    it: a session without a user appended to the build table fails the next build (the runner
    names model, column and check), which publishes nothing; so the build after it reads that
    day again and fails again, until the row is gone."""
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    published = stack.published()
    fact = "gold_build.fct_viewing_sessions"
    columns = [row[0] for row in stack.query(f"describe {fact}") if row[0] and not row[0].startswith("#")]
    columns = list(dict.fromkeys(columns))  # the partition column is listed twice
    bad = {"session_id": "session_id + 100000000 as session_id", "user_id": "cast(null as bigint) as user_id"}
    select = ", ".join(bad.get(column, column) for column in columns)
    stack.query(f"insert into {fact} select {select} from {fact} order by session_id desc limit 1")
    day = _value(stack, f"select cast(session_date as string) from {fact} where user_id is null")
    try:
        for attempt in ("first", "second"):
            code, log, _seconds = _transform(
                simulated.config, select="fct_viewing_sessions", run_id=f"e2e-dbt-bad-fact-row-{attempt}"
            )
            assert code != EXIT_OK, _tail(log)
            assert "fct_viewing_sessions.user_id: not_null, 1 row" in log, _tail(log)
            assert "transform: nothing published" in log
            compiled = dbt_target_dir(stack.config).joinpath(*FACT_CHECKS)
            checked = _days_in((compiled / "fct_viewing_sessions_partition_checks.sql").read_text())
            assert checked is not None and day in checked, (attempt, checked)
            assert stack.published() == published
    finally:
        stack.query(f"delete from {fact} where user_id is null")


def test_a_build_that_fails_a_test_publishes_nothing(simulated: Simulated, stack: Stack) -> None:
    """Write-audit-publish: a dbt test fails after its model was rebuilt; BI users see none of it.

    A podcast is a type the catalogue does not have: one in a batch is a warning for the gate
    (under its critical share) and an error for the accepted_values check of
    stg_mongodb__content's column_checks test, which the runner names. dbt re-creates that
    model (a view over bronze) in silver_build, its test fails, everything downstream is
    skipped, and not one object of silver or gold changes.
    """
    published = stack.published()
    model = "silver_build.stg_mongodb__content"
    columns = [row[0] for row in stack.query("describe bronze.content") if row[0] and not row[0].startswith("#")]
    values = {"content_id": f"'{PODCAST_ID}' as content_id", "type": "'podcast' as type"}
    select = ", ".join(values.get(column, column) for column in columns)
    stack.query(f"insert into bronze.content select {select} from bronze.content where type = 'movie' limit 1")
    try:
        # Straight to dbt: the gate is not what this test is about (tests/integration/test_quality.py).
        code, log, _seconds = _transform(
            simulated.config, select="stg_mongodb__content+", run_id="e2e-dbt-failing-test", check_gate=False
        )
        assert code != EXIT_OK, _tail(log)
        assert "stg_mongodb__content.content_type: accepted_values, 1 row" in log, _tail(log)
        assert "transform: nothing published" in log
        assert _value(stack, f"select count(*) from {model} where content_id = '{PODCAST_ID}'") == 1  # built
        assert stack.published() == published  # every silver and gold object, not one
        assert _value(stack, f"select count(*) from silver.stg_mongodb__content where content_id = '{PODCAST_ID}'") == 0
    finally:
        stack.query(f"delete from bronze.content where content_id = '{PODCAST_ID}'")


# The marts built from the fact incrementally, or from such a mart, with their keys.
DAILY_MARTS = (
    ("mart_daily_kpis", "activity_date, device_type, country_code"),
    ("mart_hourly_activity", "activity_date, started_hour, device_type"),
    ("mart_viewing_patterns", "day_of_week_number, started_hour, device_type"),
)


@pytest.mark.timeout(900)  # a whole --full-refresh build (about 180 s in CI)
def test_bronze_that_lost_rows_is_rebuilt_and_gives_the_fact_of_the_incremental_merges(
    simulated: Simulated, stack: Stack
) -> None:
    """The podcast's removal from bronze.content (above) is a DELETE since the last published
    build: incremental models would keep what bronze lost, so transform rebuilds from scratch,
    and the fact and the daily marts it rebuilds are row for row the ones the incremental
    merges made."""
    assert simulated.code == EXIT_OK, _tail(simulated.log)
    merged = _frame(stack, "select * from gold.fct_viewing_sessions order by session_id")
    merged_marts = {mart: _frame(stack, f"select * from gold.{mart} order by {key}") for mart, key in DAILY_MARTS}

    code, log, _seconds = _transform(simulated.config, run_id="e2e-dbt-rebuild")
    assert code == EXIT_OK, _tail(log)
    assert "rows were removed from bronze.content since the last published build" in log, _tail(log)
    assert "--full-refresh" in log
    rebuilt = _frame(stack, "select * from gold.fct_viewing_sessions order by session_id")
    assert list(rebuilt.columns) == list(merged.columns)
    pd.testing.assert_frame_equal(merged, rebuilt, check_exact=True)
    for mart, key in DAILY_MARTS:
        rebuilt_mart = _frame(stack, f"select * from gold.{mart} order by {key}")
        pd.testing.assert_frame_equal(merged_marts[mart], rebuilt_mart, check_exact=True, obj=mart)


def test_a_transform_with_nothing_new_is_skipped_and_rewrites_nothing(simulated: Simulated, stack: Stack) -> None:
    published = stack.published()
    fact_version = _build_version(stack, "gold_build.fct_viewing_sessions")
    code, log, seconds = _transform(simulated.config, run_id="e2e-dbt-nothing-new")
    assert code == EXIT_OK, _tail(log)
    assert "transform: skipped: no bronze table changed since the last published build" in log
    assert "dbt" not in log.replace("dbt project", "")  # dbt did not start
    assert stack.published() == published
    assert _build_version(stack, "gold_build.fct_viewing_sessions") == fact_version
    print(f"transform with nothing new: {seconds:.1f} s")


def test_a_pipeline_with_nothing_new_starts_no_spark_application_and_changes_no_table(
    simulated: Simulated, stack: Stack
) -> None:
    """A scheduler's next poll after the day: every step is decided without Spark.

    The extract, the gate, dbt and maintenance are skipped, each with its reason, and no Delta
    table of bronze, silver or gold gets a new version.
    """
    published = stack.published()
    versions = stack.versions()
    result = stack.pipeline("--profile")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    run_id = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("run "))
    steps = dict(
        stack.query(
            f"select step, coalesce(status, '') from ops.pipeline_runs where run_id = '{run_id}' "
            "and source_table is null"
        )
    )
    assert steps == {
        "up": "succeeded",
        "sources": "succeeded",
        "extract": "skipped",
        "validate": "skipped",
        "transform": "skipped",
        "maintain": "skipped",
        "pipeline": "succeeded",
    }, steps
    summary = result.stdout.split(f"run {run_id}")[1]
    assert "nothing new in the 4 source tables" in summary
    assert "no unvalidated batch in the 4 bronze tables" in summary
    assert "no bronze table changed since the last published build" in summary
    [(applications,)] = stack.query(
        f"select get_json_object(profile, '$.spark_applications') from ops.pipeline_runs "
        f"where run_id = '{run_id}' and step = 'pipeline'"
    )
    assert applications == "0"
    assert stack.published() == published
    assert stack.versions() == versions
