"""Advance the loaded sources in time, in place, as the streaming application would.

``lakehouse simulate --days N`` moves the *source clock* forward by ``N`` days and writes what
the platform would have written over those days, every change stamped with an ``updated_at``
inside the simulated window ``(T0, T0 + N days)``:

- **viewing_sessions**: new sessions (about one day of the source's recent volume per day, with
  the same daily and weekly rhythm, device mix by country, quality by device capped by the plan,
  Zipf-like title popularity taken from recent viewing), ids continuing after the current
  maximum and inserted with COPY. Sessions still running at the end of the window are written
  in progress (partial watch, not completed); those and a few other recent unfinished sessions
  are later *updated after the fact*: ``ended_at``, ``watch_seconds`` and ``completed`` change.
- **ratings**: users rate some of what they watched (rating from the title's and the user's
  average plus noise, lower when they gave up); a few existing ratings are edited.
- **users**: plan changes (``monthly_price`` follows plan and billing cycle), pauses, resumes
  and churn, at most one change per user and run. Churned or paused users stop watching.
- **content** (MongoDB): new titles arrive during the window (and get watched after they
  arrive) and some existing titles get metadata corrections (title, genres or director).

Only clean rows are touched or referenced (a unique, non-null key; values the contract
accepts), so the simulation adds no defects: quarantined rows stay as they are and new rows
never point at them. Rows not touched keep their ``updated_at`` exactly.

The clock
---------
``T0`` is the latest of: the last ``simulated_until`` in ``public.sim_clock`` (one row per run,
with the counts of what changed), and the greatest ``updated_at`` in the three tables and the
content collection. The window is ``(T0, T0 + days * 86400 s)``; the next run starts where this
one ended. New ``updated_at`` values are therefore always later than everything in the sources,
which is what incremental extracts with a watermark rely on.

Determinism: the random generator is seeded with ``(seed, T0)`` and every read is ordered, so
the same seed on the same starting state gives the same changes.

Atomicity: all PostgreSQL changes happen in one transaction, committed after the MongoDB writes
succeeded; a failure rolls PostgreSQL back (MongoDB writes made before the failure stay; they
are plausible application changes and the next run starts after them). An advisory lock keeps a
simulation and a load from running at once.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql
from psycopg2.extras import execute_values
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from lakehouse import errors
from lakehouse.config import Config
from lakehouse.services import postgres
from lakehouse.services.process import ServiceError
from lakehouse.sources.catalogue import (
    CONTENT_COUNTRIES,
    FAMILY_GENRES,
    GENRES,
    MAX_GENRES,
    METADATA_CORRECTION_SHARE,
    MOVIE,
    MOVIE_MINUTES_MEAN,
    MOVIE_MINUTES_RANGE,
    MOVIE_MINUTES_SD,
    NEW_TITLE_MAX_LAG_YEARS,
    NEW_TITLE_SHARE,
    SERIES,
    SERIES_SHARE,
    build_documents,
    build_episodes,
    content_id_for,
    draw_titles,
)
from lakehouse.sources.common import (
    DAYS_PER_WEEK,
    HOURS_PER_DAY,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    SECONDS_PER_MINUTE,
    WEEKEND_WEEKDAYS,
    draw_prefix,
    iso,
    iso_array,
    probabilities,
    sample_rows,
    take,
    year_of,
)
from lakehouse.sources.csv_files import CSV_WRITE_OPTIONS, VIEWING_SESSIONS_COLUMNS, VIEWING_SESSIONS_SCHEMA
from lakehouse.sources.load import (
    SIM_CLOCK_TABLE,
    SourceLoadError,
    mongo_database,
    parse_timestamp,
    sources_lock,
    to_mongo_document,
)
from lakehouse.sources.people import COUNTRIES, Pools, build_pools
from lakehouse.sources.ratings import (
    ABANDONED_RATING_SHIFT,
    COMPLETED_RATING_SHIFT,
    RATING_DELAY_MEAN_SECONDS,
    RATING_EDIT_SHARE,
    RATING_MAX,
    RATING_MIN,
    RATING_NOISE_SD,
)
from lakehouse.sources.schema import CONTENT_COLLECTION, SCHEMA, TABLES
from lakehouse.sources.sessions import (
    APP_VERSION_LAG_WEIGHTS,
    COMPLETE_FRACTION_RANGE,
    COMPLETION_RATIO,
    DEVICES,
    EPISODE_POSITION_SKEW,
    HOME_DEVICE_SHARE,
    HOUR_WEIGHTS_WEEKDAY,
    HOUR_WEIGHTS_WEEKEND,
    INGEST_DELAY_MAX_SECONDS,
    QUALITIES,
    WEEKDAY_WEIGHTS,
    SessionTables,
    session_tables,
    stream_quality,
    watched_seconds,
)
from lakehouse.sources.users import BILLING_CYCLES, MONTHLY_PRICE_USD, PLANS, STATUSES

Progress = Callable[[str], None]

MAX_DAYS = 366
NEVER = np.iinfo(np.int64).max
GENERATOR_WINDOW_DAYS = 90  # the generator's window: turns its shares into daily rates

# Recent history that sets the pace: daily volume, who watches, what is popular.
VOLUME_LOOKBACK_DAYS = 7
ACTIVITY_LOOKBACK_DAYS = 28
BASE_USER_WEIGHT = 0.1  # an active user who did not watch recently may come back
BASE_TITLE_WEIGHT = 0.2  # every clean title can be found
NEW_TITLE_POPULARITY_BOOST = 2.0  # new arrivals get attention
SESSION_CHUNK_ROWS = 1_000_000

# Daily probabilities per user (turned into per-run ones for `days`): a few % of users change.
PLAN_CHANGE_DAILY = 0.015
CHURN_DAILY = 0.004
PAUSE_DAILY = 0.003
RESUME_DAILY = 0.05  # of paused users
BILLING_SWITCH_SHARE = 0.15  # plan changes that also switch the billing cycle

# Sessions updated after the fact.
UPDATE_CANDIDATE_DAYS = 2
UPDATE_SHARE_OF_NEW = 0.03  # besides the sessions a previous run left in progress
IN_PROGRESS_HORIZON_SECONDS = 2 * SECONDS_PER_HOUR
LATE_REPORT_MAX_SECONDS = 6 * SECONDS_PER_HOUR
RESUMED_FRACTION_RANGE = (0.2, 0.9)  # share of the remaining duration watched on resume

RATING_USER_BIAS_WEIGHT = 0.6
DEFAULT_RATING_MEAN = 3.5
MIN_RATING_SHARE = 0.01
CORRECTION_KINDS = ("title", "genres", "director")

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CONTENT_NUMBER = re.compile(r"^c(\d+)$")


# --------------------------------------------------------------------------- public API


def simulate(config: Config, days: int, *, seed: int = 7, progress: Callable[[str], None] = print) -> dict[str, int]:
    """Advance the sources in place by `days`; return counts of what changed.

    The counts: days, new_sessions, in_progress_sessions, updated_sessions, new_ratings,
    updated_ratings, plan_changes, paused, resumed, churned, new_titles, corrected_titles.

    Raises ValueError on bad arguments or when the sources are not loaded, and
    :class:`~lakehouse.services.process.ServiceError` when a server fails.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days: must be a whole number of days between 1 and {MAX_DAYS}, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    started = time.perf_counter()
    conn = postgres.connect(config, config.postgres.database)
    try:
        with sources_lock(conn, "simulate"), mongo_database(config) as database:
            state = _read_state(conn, database)
            window = _SimWindow(start=state.clock, end=state.clock + days * SECONDS_PER_DAY)
            unit = "day" if days == 1 else "days"
            progress(f"simulate: source clock {iso(window.start)} -> {iso(window.end)} ({days} {unit}, seed {seed})")
            rng = np.random.default_rng([seed, window.start])
            counts = _run(conn, database, rng, state, window, seed, progress)
            conn.commit()
    except psycopg2.Error as exc:
        raise ServiceError(
            f"postgres: {config.postgres.display()}: simulate failed: {errors.first_line(exc)}"
        ) from None
    except PyMongoError as exc:
        raise ServiceError(
            f"mongodb: {config.mongodb.display()}: simulate failed, PostgreSQL changes rolled back: "
            f"{errors.first_line(exc)}"
        ) from None
    finally:
        conn.close()
    progress(f"simulate: done in {time.perf_counter() - started:.1f} s; the source clock is now {iso(window.end)}")
    return counts


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class _SimWindow:
    """The simulated window in epoch seconds: changes fall into [start + 1, end - 1]."""

    start: int
    end: int

    @property
    def days(self) -> float:
        """Length in days."""
        return (self.end - self.start) / SECONDS_PER_DAY

    def instants(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform instants strictly inside the window."""
        return self.start + 1 + np.floor(rng.random(n) * (self.end - self.start - 1)).astype(np.int64)


@dataclass
class _SourceUsers:
    """Clean users (unique, non-null id, values the contract accepts), ordered by user_id."""

    user_id: np.ndarray
    country: np.ndarray  # index into COUNTRIES
    plan: np.ndarray  # index into PLANS
    billing: np.ndarray  # index into BILLING_CYCLES
    status: np.ndarray  # index into STATUSES
    recent_sessions: np.ndarray
    home_device: np.ndarray  # index into DEVICES, -1 when unknown
    rating_offset: np.ndarray  # user's mean rating minus the global mean (0 when unknown)


@dataclass
class _Titles:
    """Clean titles from the content collection, in ``added_at`` order, with flat episodes."""

    ids: list[str]
    added_ts: np.ndarray
    is_series: np.ndarray
    weight: np.ndarray
    movie_minutes: np.ndarray
    episode_offset: np.ndarray
    episode_count: np.ndarray
    episode_codes: list[str]
    episode_minutes: np.ndarray
    rating_mean: np.ndarray
    country: np.ndarray  # index into CONTENT_COUNTRIES
    genres: list[list[str]]

    @property
    def n(self) -> int:
        """Number of titles."""
        return len(self.ids)


@dataclass(frozen=True)
class _SourceState:
    """What the simulation reads from the sources before changing them."""

    clock: int
    users: _SourceUsers
    titles: _Titles
    max_session_id: int
    max_content_number: int
    total_documents: int
    daily_sessions: float
    rating_share: float
    daily_ratings: float
    app_versions: list[str]  # recent versions, oldest first
    global_rating: float


def _read_state(conn: Any, database: Database) -> _SourceState:
    """Read the clock, clean users and titles and recent activity; ValueError when not loaded."""
    with conn.cursor() as cur:
        for spec in TABLES:
            cur.execute("select to_regclass(%s) is not null", (f"{SCHEMA}.{spec.name}",))
            if not cur.fetchone()[0]:
                raise SourceLoadError(f"simulate: {spec.qualified} does not exist; run `lakehouse load-sources` first")
        _ensure_clock_table(cur)
        clocks = []
        for spec in TABLES:
            cur.execute(sql.SQL("select max(updated_at) from {}").format(_table(spec.name)))
            clocks.append(cur.fetchone()[0])
        cur.execute(sql.SQL("select max(simulated_until) from {}").format(_table(SIM_CLOCK_TABLE)))
        clocks.append(cur.fetchone()[0])
        documents = list(database[CONTENT_COLLECTION].find({}, sort=[("_id", 1)]))
        clocks.extend(d.get("updated_at") for d in documents if isinstance(d.get("updated_at"), datetime))
        instants = [value.timestamp() for value in clocks if value is not None]
        if not instants or not documents:
            raise SourceLoadError("simulate: the sources are empty; run `lakehouse load-sources` first")
        clock = math.ceil(max(instants))

        cur.execute("select max(session_id) from viewing_sessions")
        max_session_id = int(cur.fetchone()[0] or 0)
        since = _ts(clock - VOLUME_LOOKBACK_DAYS * SECONDS_PER_DAY)
        cur.execute("select count(*) from viewing_sessions where updated_at > %s", (since,))
        recent_sessions = int(cur.fetchone()[0])
        cur.execute("select count(*) from ratings where updated_at > %s", (since,))
        recent_ratings = int(cur.fetchone()[0])
        if recent_sessions == 0:
            cur.execute("select count(*) from viewing_sessions")
            recent_sessions = int(cur.fetchone()[0]) * VOLUME_LOOKBACK_DAYS // GENERATOR_WINDOW_DAYS
        cur.execute(
            "select app_version, count(*) from viewing_sessions where updated_at > %s "
            "and app_version is not null group by app_version",
            (since,),
        )
        versions = sorted((row[0] for row in cur.fetchall()), key=_version_key)
        cur.execute("select avg(rating) from ratings where rating between %s and %s", (RATING_MIN, RATING_MAX))
        global_rating = float(cur.fetchone()[0] or DEFAULT_RATING_MEAN)
        users = _read_users(cur, clock, global_rating)
        titles = _read_titles(cur, documents, clock, global_rating)
    conn.rollback()
    if users.user_id.size == 0 or not (users.status == STATUSES.index("active")).any():
        raise SourceLoadError("simulate: public.users holds no clean active user to simulate")
    if titles.n == 0:
        raise SourceLoadError(f"simulate: {database.name}.{CONTENT_COLLECTION} holds no clean title to simulate")
    numbers = [int(m.group(1)) for d in documents if (m := CONTENT_NUMBER.match(str(d.get("_id"))))]
    daily_sessions = max(recent_sessions / VOLUME_LOOKBACK_DAYS, 1.0)
    return _SourceState(
        clock=clock,
        users=users,
        titles=titles,
        max_session_id=max_session_id,
        max_content_number=max(numbers, default=0),
        total_documents=len(documents),
        daily_sessions=daily_sessions,
        rating_share=min(1.0, max(MIN_RATING_SHARE, recent_ratings / max(recent_sessions, 1))),
        daily_ratings=recent_ratings / VOLUME_LOOKBACK_DAYS,
        app_versions=versions or ["1.0.0"],
        global_rating=global_rating,
    )


def _read_users(cur: Any, clock: int, global_rating: float) -> _SourceUsers:
    """Clean users with their recent activity, usual device and rating habit."""
    cur.execute(
        "select user_id, country, subscription_plan, billing_cycle, status, birth_date from users "
        "where user_id in (select user_id from users where user_id is not null group by user_id having count(*) = 1) "
        "order by user_id"
    )
    rows = [row for row in cur.fetchall() if _clean_user(row)]
    user_id = np.asarray([row[0] for row in rows], dtype=np.int64)
    since = _ts(clock - ACTIVITY_LOOKBACK_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select user_id, count(*), mode() within group (order by device_type) from viewing_sessions "
        "where updated_at > %s and user_id is not null group by user_id order by user_id",
        (since,),
    )
    activity = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    cur.execute(
        "select user_id, avg(rating) from ratings where rating between %s and %s and user_id is not null "
        "group by user_id order by user_id",
        (RATING_MIN, RATING_MAX),
    )
    rating_mean = {row[0]: float(row[1]) for row in cur.fetchall()}
    ids = user_id.tolist()
    return _SourceUsers(
        user_id=user_id,
        country=np.asarray([COUNTRIES.index(row[1]) for row in rows], dtype=np.int64),
        plan=np.asarray([PLANS.index(row[2]) for row in rows], dtype=np.int64),
        billing=np.asarray([BILLING_CYCLES.index(row[3]) for row in rows], dtype=np.int64),
        status=np.asarray([STATUSES.index(row[4]) for row in rows], dtype=np.int64),
        recent_sessions=np.asarray([activity.get(i, (0, None))[0] for i in ids], dtype=np.float64),
        home_device=np.asarray(
            [DEVICES.index(d) if (d := activity.get(i, (0, None))[1]) in DEVICES else -1 for i in ids], dtype=np.int64
        ),
        rating_offset=np.asarray([rating_mean.get(i, global_rating) - global_rating for i in ids]),
    )


def _clean_user(row: Sequence[Any]) -> bool:
    """True when a user row has only values the contract accepts."""
    _, country, plan, billing, status, birth_date = row
    if country not in COUNTRIES or plan not in PLANS or billing not in BILLING_CYCLES or status not in STATUSES:
        return False
    if not isinstance(birth_date, str) or not ISO_DATE.match(birth_date):
        return False
    try:
        date.fromisoformat(birth_date)
    except ValueError:
        return False
    return True


def _read_titles(cur: Any, documents: list[dict[str, Any]], clock: int, global_rating: float) -> _Titles:
    """Clean titles (every contract field well typed) with recent popularity and mean rating."""
    clean = sorted(
        (d for d in documents if _clean_document(d)),
        key=lambda d: (d["added_at"], d["_id"]),
    )
    since = _ts(clock - ACTIVITY_LOOKBACK_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select content_id, count(*) from viewing_sessions where updated_at > %s and content_id is not null "
        "group by content_id order by content_id",
        (since,),
    )
    recent = {row[0]: int(row[1]) for row in cur.fetchall()}
    cur.execute(
        "select content_id, avg(rating) from ratings where rating between %s and %s and content_id is not null "
        "group by content_id order by content_id",
        (RATING_MIN, RATING_MAX),
    )
    rating_mean = {row[0]: float(row[1]) for row in cur.fetchall()}
    return _titles_from_documents(
        clean,
        weight=[recent.get(d["_id"], 0) + BASE_TITLE_WEIGHT for d in clean],
        rating_mean=[rating_mean.get(d["_id"], global_rating) for d in clean],
    )


def _clean_document(document: Mapping[str, Any]) -> bool:
    """True when a content document has every field the simulation uses, well typed."""
    if not isinstance(document.get("_id"), str) or not isinstance(document.get("title"), str):
        return False
    if not isinstance(document.get("added_at"), datetime) or not isinstance(document.get("updated_at"), datetime):
        return False
    if not _is_int(document.get("release_year")) or document.get("country") not in CONTENT_COUNTRIES:
        return False
    if not isinstance(document.get("genres"), list):
        return False
    if document.get("type") == MOVIE:
        return _is_int(document.get("duration_minutes"))
    if document.get("type") == SERIES:
        return bool(_episodes(document))
    return False


def _is_int(value: object) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _episodes(document: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(SxxEyy, minutes)`` of a series document; empty when any episode is malformed."""
    result: list[tuple[str, int]] = []
    seasons = document.get("seasons")
    if not isinstance(seasons, list):
        return []
    for season in seasons:
        episodes = season.get("episodes") if isinstance(season, dict) else None
        if not isinstance(episodes, list) or not _is_int(season.get("season_number")):
            return []
        for episode in episodes:
            if not isinstance(episode, dict):
                return []
            number, minutes = episode.get("episode_number"), episode.get("duration_minutes")
            if not _is_int(number) or not _is_int(minutes):
                return []
            result.append((f"S{season['season_number']:02d}E{number:02d}", int(minutes)))
    return result


def _titles_from_documents(documents: list[dict[str, Any]], weight: list[float], rating_mean: list[float]) -> _Titles:
    """Array form of clean documents (already in ``added_at`` order)."""
    offsets, counts, codes, minutes = [], [], [], []
    for document in documents:
        episodes = _episodes(document) if document["type"] == SERIES else []
        offsets.append(len(codes))
        counts.append(len(episodes))
        codes.extend(code for code, _ in episodes)
        minutes.extend(m for _, m in episodes)
    return _Titles(
        ids=[d["_id"] for d in documents],
        added_ts=np.asarray([int(d["added_at"].timestamp()) for d in documents], dtype=np.int64),
        is_series=np.asarray([d["type"] == SERIES for d in documents], dtype=bool),
        weight=np.asarray(weight, dtype=np.float64),
        movie_minutes=np.asarray(
            [d["duration_minutes"] if d["type"] == MOVIE else 0 for d in documents], dtype=np.int64
        ),
        episode_offset=np.asarray(offsets, dtype=np.int64),
        episode_count=np.asarray(counts, dtype=np.int64),
        episode_codes=codes or [""],
        episode_minutes=np.asarray(minutes or [0], dtype=np.int64),
        rating_mean=np.asarray(rating_mean, dtype=np.float64),
        country=np.asarray([CONTENT_COUNTRIES.index(d["country"]) for d in documents], dtype=np.int64),
        genres=[list(d["genres"]) for d in documents],
    )


def _version_key(version: str) -> tuple[int, ...]:
    """Sort key of a dotted version (non-numeric parts count as 0)."""
    return tuple(int(part) if part.isdigit() else 0 for part in str(version).split("."))


# --------------------------------------------------------------------------- the run


def _run(
    conn: Any,
    database: Database,
    rng: np.random.Generator,
    state: _SourceState,
    window: _SimWindow,
    seed: int,
    progress: Progress,
) -> dict[str, int]:
    """Plan and write every change; PostgreSQL is left uncommitted for the caller."""
    pools = build_pools(seed)
    user_changes = _plan_user_changes(rng, state.users, window)
    new_documents, titles = _plan_new_titles(rng, state, window, pools)
    corrections = _plan_corrections(rng, state, window, pools)

    with conn.cursor() as cur:
        _apply_user_changes(cur, state.users, user_changes)
        progress(
            f"users: {user_changes.count('plan'):,} plan changes, {user_changes.count('paused'):,} paused, "
            f"{user_changes.count('resumed'):,} resumed, {user_changes.count('churned'):,} churned"
        )
        sessions = _write_new_sessions(cur, rng, state, titles, user_changes, window)
        progress(
            f"viewing_sessions: {sessions.rows:,} new (session_id {state.max_session_id + 1:,}.."
            f"{state.max_session_id + sessions.rows:,}, {sessions.in_progress:,} still in progress)"
        )
        updated_sessions = _update_sessions(cur, rng, state, titles, window, sessions.rows)
        progress(f"viewing_sessions: {updated_sessions:,} earlier sessions updated after the fact")
        new_ratings = _insert_ratings(cur, rng, state, titles, sessions, window)
        updated_ratings = _edit_ratings(cur, rng, state, window)
        progress(f"ratings: {new_ratings:,} new, {updated_ratings:,} edited")

        counts = {
            "days": round(window.days),
            "new_sessions": sessions.rows,
            "in_progress_sessions": sessions.in_progress,
            "updated_sessions": updated_sessions,
            "new_ratings": new_ratings,
            "updated_ratings": updated_ratings,
            "plan_changes": user_changes.count("plan"),
            "paused": user_changes.count("paused"),
            "resumed": user_changes.count("resumed"),
            "churned": user_changes.count("churned"),
            "new_titles": len(new_documents),
            "corrected_titles": len(corrections),
        }
        cur.execute(
            sql.SQL(
                "insert into {} (started_from, simulated_until, days, seed, summary) values (%s, %s, %s, %s, %s)"
            ).format(_table(SIM_CLOCK_TABLE)),
            (_ts(window.start), _ts(window.end), counts["days"], seed, json.dumps(counts)),
        )

    content = database[CONTENT_COLLECTION]
    if new_documents:
        content.insert_many(new_documents, ordered=False)
    if corrections:
        content.bulk_write(corrections, ordered=True)
    progress(f"content: {len(new_documents):,} new titles, {len(corrections):,} corrected")
    return counts


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class _UserChanges:
    """One change per affected user (index into the clean users), at ``at`` seconds."""

    index: np.ndarray
    kind: list[str]  # plan, paused, resumed, churned
    at: np.ndarray
    plan: np.ndarray
    billing: np.ndarray
    status: np.ndarray

    def count(self, kind: str) -> int:
        """Changes of one kind."""
        return self.kind.count(kind)

    def inactive_from(self, n: int) -> np.ndarray:
        """Per clean user: the instant from which they no longer watch (NEVER if they do)."""
        result = np.full(n, NEVER, dtype=np.int64)
        stops = np.asarray([k in ("paused", "churned") for k in self.kind], dtype=bool)
        result[self.index[stops]] = self.at[stops]
        return result

    def plan_after(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per clean user: the new plan (or -1) and the instant it applies from."""
        plan = np.full(n, -1, dtype=np.int64)
        since = np.full(n, NEVER, dtype=np.int64)
        changed = np.asarray([k == "plan" for k in self.kind], dtype=bool)
        plan[self.index[changed]] = self.plan[changed]
        since[self.index[changed]] = self.at[changed]
        return plan, since


def _per_run(daily: float, days: float) -> float:
    """The probability of at least one event in ``days`` days at a daily probability."""
    return 1.0 - (1.0 - daily) ** days


def _plan_user_changes(rng: np.random.Generator, users: _SourceUsers, window: _SimWindow) -> _UserChanges:
    """Draw plan changes, pauses and churn among active users and resumes among paused ones."""
    n = users.user_id.size
    active = users.status == STATUSES.index("active")
    paused = users.status == STATUSES.index("paused")
    draw = rng.random(n)
    p_plan = _per_run(PLAN_CHANGE_DAILY, window.days)
    p_churn = _per_run(CHURN_DAILY, window.days)
    p_pause = _per_run(PAUSE_DAILY, window.days)
    kind = np.full(n, "", dtype=object)
    kind[active & (draw < p_plan)] = "plan"
    kind[active & (draw >= p_plan) & (draw < p_plan + p_churn)] = "churned"
    kind[active & (draw >= p_plan + p_churn) & (draw < p_plan + p_churn + p_pause)] = "paused"
    kind[paused & (draw < _per_run(RESUME_DAILY, window.days))] = "resumed"
    index = np.flatnonzero(kind != "")
    at = window.instants(rng, index.size)
    plan = users.plan[index].copy()
    billing = users.billing[index].copy()
    status = users.status[index].copy()
    kinds = [str(k) for k in kind[index].tolist()]
    is_plan = np.asarray([k == "plan" for k in kinds], dtype=bool)
    plan[is_plan] = (plan[is_plan] + rng.integers(1, len(PLANS), int(is_plan.sum()))) % len(PLANS)
    switch = is_plan & (rng.random(index.size) < BILLING_SWITCH_SHARE)
    billing[switch] = 1 - billing[switch]
    for name, code in (("churned", "churned"), ("paused", "paused"), ("resumed", "active")):
        status[np.asarray([k == name for k in kinds], dtype=bool)] = STATUSES.index(code)
    return _UserChanges(index=index, kind=kinds, at=at, plan=plan, billing=billing, status=status)


def _apply_user_changes(cur: Any, users: _SourceUsers, changes: _UserChanges) -> None:
    """UPDATE the changed users: plan, billing, price (consistent), status and updated_at."""
    if changes.index.size == 0:
        return
    rows = [
        (
            int(users.user_id[i]),
            PLANS[p],
            BILLING_CYCLES[b],
            Decimal(MONTHLY_PRICE_USD[(PLANS[p], BILLING_CYCLES[b])]),
            STATUSES[s],
            _ts(int(t)),
        )
        for i, p, b, s, t in zip(
            changes.index.tolist(),
            changes.plan.tolist(),
            changes.billing.tolist(),
            changes.status.tolist(),
            changes.at.tolist(),
            strict=True,
        )
    ]
    execute_values(
        cur,
        "update public.users as u set subscription_plan = v.plan, billing_cycle = v.billing, "
        "monthly_price = v.price, status = v.status, updated_at = v.updated_at "
        "from (values %s) as v (user_id, plan, billing, price, status, updated_at) where u.user_id = v.user_id",
        rows,
        template="(%s::bigint, %s, %s, %s::numeric, %s, %s::timestamptz)",
    )


# --------------------------------------------------------------------------- content


def _plan_new_titles(
    rng: np.random.Generator, state: _SourceState, window: _SimWindow, pools: Pools
) -> tuple[list[dict[str, Any]], _Titles]:
    """New documents arriving during the window, and the title arrays including them."""
    daily = state.total_documents * NEW_TITLE_SHARE / GENERATOR_WINDOW_DAYS
    n = max(1, int(rng.poisson(daily * window.days)))
    added = np.sort(window.instants(rng, n))
    is_series = rng.random(n) < SERIES_SHARE
    movie_minutes = np.clip(np.rint(rng.normal(MOVIE_MINUTES_MEAN, MOVIE_MINUTES_SD, n)), *MOVIE_MINUTES_RANGE).astype(
        np.int64
    )
    release_year = year_of(added) - rng.integers(0, NEW_TITLE_MAX_LAG_YEARS + 1, n)
    documents = build_documents(
        rng,
        is_series=is_series,
        added=added,
        updated=added,
        release_year=release_year,
        movie_minutes=movie_minutes,
        episodes=build_episodes(rng, is_series),
        pools=pools,
    )
    for offset, document in enumerate(documents, start=1):
        document["_id"] = content_id_for(state.max_content_number + offset)
        to_mongo_document(document)
    existing = state.titles
    boost = rng.choice(existing.weight, size=n) * NEW_TITLE_POPULARITY_BOOST
    new = _titles_from_documents(documents, weight=boost.tolist(), rating_mean=[state.global_rating] * n)
    return documents, _concat_titles(existing, new)


def _concat_titles(first: _Titles, second: _Titles) -> _Titles:
    """Titles of ``first`` then ``second`` (both in added order, second later), episodes re-based."""
    codes_first = first.episode_codes if first.episode_count.sum() else []
    minutes_first = first.episode_minutes if first.episode_count.sum() else np.zeros(0, dtype=np.int64)
    codes_second = second.episode_codes if second.episode_count.sum() else []
    minutes_second = second.episode_minutes if second.episode_count.sum() else np.zeros(0, dtype=np.int64)
    codes = list(codes_first) + list(codes_second)
    return _Titles(
        ids=first.ids + second.ids,
        added_ts=np.concatenate([first.added_ts, second.added_ts]),
        is_series=np.concatenate([first.is_series, second.is_series]),
        weight=np.concatenate([first.weight, second.weight]),
        movie_minutes=np.concatenate([first.movie_minutes, second.movie_minutes]),
        episode_offset=np.concatenate([first.episode_offset, second.episode_offset + len(codes_first)]),
        episode_count=np.concatenate([first.episode_count, second.episode_count]),
        episode_codes=codes or [""],
        episode_minutes=np.concatenate([minutes_first, minutes_second]) if codes else np.zeros(1, dtype=np.int64),
        rating_mean=np.concatenate([first.rating_mean, second.rating_mean]),
        country=np.concatenate([first.country, second.country]),
        genres=first.genres + second.genres,
    )


def _plan_corrections(
    rng: np.random.Generator, state: _SourceState, window: _SimWindow, pools: Pools
) -> list[UpdateOne]:
    """Metadata corrections on existing clean titles: a fixed title, genres or director."""
    titles = state.titles
    daily = titles.n * METADATA_CORRECTION_SHARE / GENERATOR_WINDOW_DAYS
    n = min(titles.n, max(1, int(rng.poisson(daily * window.days))))
    chosen = np.sort(rng.choice(titles.n, size=n, replace=False))
    at = window.instants(rng, n)
    kinds = rng.integers(0, len(CORRECTION_KINDS), n)
    new_titles = draw_titles(rng, titles.country[chosen], pools)
    plain_genres = [g for g in GENRES if g not in FAMILY_GENRES]
    operations = []
    for position, (index, kind) in enumerate(zip(chosen.tolist(), kinds.tolist(), strict=True)):
        when = datetime.fromtimestamp(int(at[position]), UTC)
        name = CORRECTION_KINDS[kind]
        if name == "title":
            change: dict[str, Any] = {"title": new_titles[position]}
        elif name == "genres":
            genres = list(titles.genres[index])
            missing = [g for g in plain_genres if g not in genres]
            pick = missing[int(rng.integers(0, len(missing)))]
            genres = [*genres, pick] if len(genres) < MAX_GENRES else [*genres[:-1], pick]
            change = {"genres": genres}
        else:
            change = {"director": pools.people[int(rng.integers(0, len(pools.people)))]}
        operations.append(UpdateOne({"_id": titles.ids[index]}, {"$set": {**change, "updated_at": when}}))
    return operations


# --------------------------------------------------------------------------- new sessions


@dataclass
class _NewSessions:
    """What the new sessions left for the ratings: clean, finished sessions only."""

    rows: int
    in_progress: int
    user: list[np.ndarray]  # index into clean users
    title: list[np.ndarray]
    ended: list[np.ndarray]
    completed: list[np.ndarray]


def _hourly_expectation(state: _SourceState, window: _SimWindow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hour slots covering the window: (slot start, slot end, expected sessions)."""
    first = window.start + 1
    hours = np.arange(first // SECONDS_PER_HOUR, (window.end - 2) // SECONDS_PER_HOUR + 1)
    slot_start = np.maximum(hours * SECONDS_PER_HOUR, first)
    slot_end = np.minimum((hours + 1) * SECONDS_PER_HOUR, window.end - 1)
    days_since_epoch = hours // HOURS_PER_DAY
    weekday = (days_since_epoch + 3) % DAYS_PER_WEEK  # 1970-01-01 was a Thursday (Monday = 0)
    hour_of_day = hours % HOURS_PER_DAY
    weekday_profile = probabilities(HOUR_WEIGHTS_WEEKDAY)
    weekend_profile = probabilities(HOUR_WEIGHTS_WEEKEND)
    profile = np.where(np.isin(weekday, WEEKEND_WEEKDAYS), weekend_profile[hour_of_day], weekday_profile[hour_of_day])
    day_factor = np.asarray(WEEKDAY_WEIGHTS)[weekday] / np.mean(WEEKDAY_WEIGHTS)
    share_of_hour = (slot_end - slot_start) / SECONDS_PER_HOUR
    return slot_start, slot_end, state.daily_sessions * profile * day_factor * share_of_hour


def _write_new_sessions(
    cur: Any,
    rng: np.random.Generator,
    state: _SourceState,
    titles: _Titles,
    changes: _UserChanges,
    window: _SimWindow,
) -> _NewSessions:
    """Draw the new sessions hour by hour and COPY them in chunks; return what ratings need."""
    slot_start, slot_end, expected = _hourly_expectation(state, window)
    per_slot = rng.poisson(expected)
    users = state.users
    pool = _UserPool.build(users, changes)
    tables = session_tables()
    out = _NewSessions(rows=0, in_progress=0, user=[], title=[], ended=[], completed=[])
    first = 0
    while first < per_slot.size:
        last, rows = first, 0
        while last < per_slot.size and (rows == 0 or rows + per_slot[last] <= SESSION_CHUNK_ROWS):
            rows += int(per_slot[last])
            last += 1
        if rows:
            low = np.repeat(slot_start[first:last], per_slot[first:last])
            high = np.repeat(slot_end[first:last], per_slot[first:last])
            started = np.sort(low + np.floor(rng.random(rows) * (high - low)).astype(np.int64))
            chunk = _session_chunk(rng, started, pool, titles, tables, state, window)
            _copy_sessions(cur, chunk, state.max_session_id + out.rows + 1, titles, tables, users, state)
            rated = ~chunk["in_progress"] & (rng.random(rows) < state.rating_share)
            out.user.append(chunk["user"][rated])
            out.title.append(chunk["title"][rated])
            out.ended.append(chunk["ended"][rated])
            out.completed.append(chunk["completed"][rated])
            out.rows += rows
            out.in_progress += int(chunk["in_progress"].sum())
        first = last
    return out


@dataclass(frozen=True)
class _UserPool:
    """Who can watch: active clean users weighted by recent activity, and the steady ones."""

    index: np.ndarray  # into clean users
    cumulative: np.ndarray
    steady: np.ndarray  # subset of index without a pause or churn in the window
    steady_cumulative: np.ndarray
    inactive_from: np.ndarray  # per clean user
    new_plan: np.ndarray  # per clean user, -1 when unchanged
    plan_since: np.ndarray

    @classmethod
    def build(cls, users: _SourceUsers, changes: _UserChanges) -> _UserPool:
        """Pool of active users and their weights, from the users and their planned changes."""
        n = users.user_id.size
        index = np.flatnonzero(users.status == STATUSES.index("active"))
        weight = users.recent_sessions[index] + BASE_USER_WEIGHT
        inactive_from = changes.inactive_from(n)
        steady = index[inactive_from[index] == NEVER]
        if steady.size == 0:
            steady = index[:1]
        new_plan, plan_since = changes.plan_after(n)
        return cls(
            index=index,
            cumulative=np.cumsum(weight),
            steady=steady,
            steady_cumulative=np.cumsum(users.recent_sessions[steady] + BASE_USER_WEIGHT),
            inactive_from=inactive_from,
            new_plan=new_plan,
            plan_since=plan_since,
        )

    def draw(self, rng: np.random.Generator, started: np.ndarray) -> np.ndarray:
        """A user per session, by weight; users who stopped watching are replaced by steady ones."""
        pick = np.searchsorted(self.cumulative, rng.random(started.size) * self.cumulative[-1], side="right")
        user = self.index[np.minimum(pick, self.index.size - 1)]
        lapsed = started >= self.inactive_from[user]
        stand_in = np.searchsorted(
            self.steady_cumulative, rng.random(int(lapsed.sum())) * self.steady_cumulative[-1], side="right"
        )
        user[lapsed] = self.steady[np.minimum(stand_in, self.steady.size - 1)]
        return user


def _session_chunk(
    rng: np.random.Generator,
    started: np.ndarray,
    pool: _UserPool,
    titles: _Titles,
    tables: SessionTables,
    state: _SourceState,
    window: _SimWindow,
) -> dict[str, np.ndarray]:
    """Clean sessions starting at ``started``, as arrays of codes and epoch seconds."""
    m = started.size
    users = state.users
    user = pool.draw(rng, started)
    available = np.searchsorted(titles.added_ts, started, side="right")
    title = draw_prefix(rng, np.cumsum(titles.weight), np.maximum(available, 1))
    series = titles.is_series[title]
    position = np.floor(titles.episode_count[title] * rng.random(m) ** EPISODE_POSITION_SKEW).astype(np.int64)
    episode = np.where(series, titles.episode_offset[title] + position, 0)
    minutes = np.where(series, titles.episode_minutes[episode], titles.movie_minutes[title])
    duration = minutes * SECONDS_PER_MINUTE

    watch, pause = watched_seconds(rng, series, duration)
    delay = rng.integers(0, INGEST_DELAY_MAX_SECONDS + 1, m)
    # Still running at the end of the window: the last heartbeat is an in-progress row.
    in_progress = started + watch + pause + delay > window.end - 1
    watch = np.where(in_progress, np.clip(window.end - 1 - started, 1, watch), watch)
    pause = np.where(in_progress, 0, pause)
    delay = np.where(in_progress, 0, delay)
    ended = started + watch + pause
    completed = watch >= COMPLETION_RATIO * duration

    country = users.country[user]
    home = users.home_device[user]
    by_country = sample_rows(rng, tables.device_by_country, country)
    home = np.where(home >= 0, home, by_country)
    device = np.where(rng.random(m) < HOME_DEVICE_SHARE, home, sample_rows(rng, tables.device_by_country, country))
    operating_system = sample_rows(rng, tables.os_by_device, device)
    lag_weights = np.asarray(APP_VERSION_LAG_WEIGHTS[: len(state.app_versions)])
    lag = rng.choice(lag_weights.size, size=m, p=lag_weights / lag_weights.sum())
    app_version = len(state.app_versions) - 1 - lag
    plan = np.where(started >= pool.plan_since[user], pool.new_plan[user], users.plan[user])
    quality, bitrate, buffering_rate = stream_quality(rng, tables, device, plan, watch)
    return {
        "user": user,
        "title": title,
        "series": series,
        "episode": episode,
        "started": started,
        "ended": ended,
        "watch": watch,
        "device": device,
        "os": operating_system,
        "app_version": app_version,
        "quality": quality,
        "bitrate": bitrate,
        "buffering": rng.poisson(buffering_rate).astype(np.int64),
        "completed": completed,
        "country": country,
        "updated": ended + delay,
        "in_progress": in_progress,
    }


def _copy_sessions(
    cur: Any,
    chunk: Mapping[str, np.ndarray],
    first_id: int,
    titles: _Titles,
    tables: SessionTables,
    users: _SourceUsers,
    state: _SourceState,
) -> None:
    """COPY one chunk of new sessions into public.viewing_sessions (CSV as the generator writes it)."""
    m = chunk["user"].size
    table = pa.table(
        {
            "session_id": pa.array(first_id + np.arange(m, dtype=np.int64)),
            "user_id": pa.array(users.user_id[chunk["user"]], type=pa.int64()),
            "content_id": take(titles.ids, chunk["title"]),
            "episode": take(titles.episode_codes, chunk["episode"], mask=~chunk["series"]),
            "started_at": iso_array(chunk["started"]),
            "ended_at": iso_array(chunk["ended"]),
            "watch_seconds": pa.array(chunk["watch"], type=pa.int64()),
            "device_type": take(DEVICES, chunk["device"]),
            "os": take(tables.os_names, chunk["os"]),
            "app_version": take(state.app_versions, chunk["app_version"]),
            "streaming_quality": take(QUALITIES, chunk["quality"]),
            "avg_bitrate_kbps": pa.array(chunk["bitrate"], type=pa.int64()),
            "buffering_events": pa.array(chunk["buffering"], type=pa.int64()),
            "completed": pa.array(chunk["completed"], type=pa.bool_()),
            "country": take(COUNTRIES, chunk["country"]),
            "updated_at": iso_array(chunk["updated"]),
        },
        schema=VIEWING_SESSIONS_SCHEMA,
    )
    _copy_table(cur, "viewing_sessions", VIEWING_SESSIONS_COLUMNS, table)


def _copy_table(cur: Any, name: str, columns: Sequence[str], table: pa.Table) -> None:
    """COPY an Arrow table into ``public.<name>`` through an in-memory CSV."""
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, write_options=CSV_WRITE_OPTIONS)
    buffer.seek(0)
    statement = sql.SQL("copy {} ({}) from stdin with (format csv, header true)").format(
        _table(name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cur.copy_expert(statement.as_string(cur), buffer)


# --------------------------------------------------------------------------- session updates


def _update_sessions(
    cur: Any, rng: np.random.Generator, state: _SourceState, titles: _Titles, window: _SimWindow, new_rows: int
) -> int:
    """Finish recent unfinished sessions later than first reported; return how many changed."""
    since = _ts(window.start - UPDATE_CANDIDATE_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select session_id, content_id, episode, started_at, ended_at, watch_seconds, updated_at "
        "from viewing_sessions where updated_at > %s and updated_at <= %s and completed = false "
        "and session_id is not null and watch_seconds >= 0 order by session_id",
        (since, _ts(window.start)),
    )
    rows = cur.fetchall()
    if not rows:
        return 0
    cur.execute(
        "select session_id from viewing_sessions where session_id = any(%s) group by session_id having count(*) > 1",
        ([row[0] for row in rows],),
    )
    duplicated = {row[0] for row in cur.fetchall()}
    duration = _duration_lookup(titles)
    candidates = []
    for session_id, content_id, episode, started_at, ended_at, watch, updated_at in rows:
        started, ended = parse_timestamp(started_at), parse_timestamp(ended_at)
        seconds = duration.get((content_id, episode))
        if session_id in duplicated or started is None or ended is None or seconds is None:
            continue
        if ended < started or watch >= seconds or ended.timestamp() > window.start:
            continue
        left_running = ended_at == iso(int(updated_at.timestamp())) and (
            window.start - updated_at.timestamp() <= IN_PROGRESS_HORIZON_SECONDS
        )
        candidates.append((session_id, int(ended.timestamp()), int(watch), seconds, left_running))
    if not candidates:
        return 0
    running = [c for c in candidates if c[4]]
    others = [c for c in candidates if not c[4]]
    wanted = min(len(others), max(1, round(UPDATE_SHARE_OF_NEW * new_rows)))
    picked = sorted(running + [others[i] for i in sorted(rng.choice(len(others), size=wanted, replace=False))])
    session_id = np.asarray([c[0] for c in picked], dtype=np.int64)
    ended = np.asarray([c[1] for c in picked], dtype=np.int64)
    watch = np.asarray([c[2] for c in picked], dtype=np.int64)
    seconds = np.asarray([c[3] for c in picked], dtype=np.int64)
    n = session_id.size

    finish = rng.random(n) < 0.5
    target = np.where(
        finish,
        np.floor(rng.uniform(*COMPLETE_FRACTION_RANGE, n) * seconds),
        watch + np.floor(rng.uniform(*RESUMED_FRACTION_RANGE, n) * (seconds - watch)),
    ).astype(np.int64)
    new_watch = np.clip(target, watch + 1, seconds)
    new_ended = ended + (new_watch - watch)
    report = window.start + 1 + np.floor(rng.random(n) * min(LATE_REPORT_MAX_SECONDS, window.end - window.start - 2))
    updated = np.maximum(new_ended + rng.integers(0, INGEST_DELAY_MAX_SECONDS + 1, n), report.astype(np.int64))
    updated = np.minimum(updated, window.end - 1)
    new_ended = np.minimum(new_ended, updated)
    new_watch = np.minimum(new_watch, watch + (new_ended - ended))
    completed = new_watch >= COMPLETION_RATIO * seconds
    execute_values(
        cur,
        "update public.viewing_sessions as s set ended_at = v.ended_at, watch_seconds = v.watch_seconds, "
        "completed = v.completed, updated_at = v.updated_at "
        "from (values %s) as v (session_id, ended_at, watch_seconds, completed, updated_at) "
        "where s.session_id = v.session_id",
        [
            (int(i), iso(int(e)), int(w), bool(c), _ts(int(u)))
            for i, e, w, c, u in zip(session_id, new_ended, new_watch, completed, updated, strict=True)
        ],
        template="(%s::bigint, %s, %s::integer, %s::boolean, %s::timestamptz)",
    )
    return n


def _duration_lookup(titles: _Titles) -> dict[tuple[str, str | None], int]:
    """Seconds per (content_id, episode); episode None for movies."""
    result: dict[tuple[str, str | None], int] = {}
    for i, content_id in enumerate(titles.ids):
        if not titles.is_series[i]:
            result[(content_id, None)] = int(titles.movie_minutes[i]) * SECONDS_PER_MINUTE
            continue
        start = int(titles.episode_offset[i])
        for e in range(start, start + int(titles.episode_count[i])):
            result[(content_id, titles.episode_codes[e])] = int(titles.episode_minutes[e]) * SECONDS_PER_MINUTE
    return result


# --------------------------------------------------------------------------- ratings


def _insert_ratings(
    cur: Any, rng: np.random.Generator, state: _SourceState, titles: _Titles, sessions: _NewSessions, window: _SimWindow
) -> int:
    """Ratings of some new sessions; a (user, title) already rated is not rated again."""
    if not sessions.user:
        return 0
    user = np.concatenate(sessions.user)
    title = np.concatenate(sessions.title)
    ended = np.concatenate(sessions.ended)
    completed = np.concatenate(sessions.completed)
    rated = ended + np.floor(rng.exponential(RATING_DELAY_MEAN_SECONDS, ended.size)).astype(np.int64)
    keep = np.flatnonzero(rated <= window.end - 1)
    keep = keep[np.argsort(rated[keep], kind="stable")]
    _, first = np.unique(user[keep] * titles.n + title[keep], return_index=True)
    keep = keep[np.sort(first)]
    if keep.size == 0:
        return 0
    n = keep.size
    score = (
        titles.rating_mean[title[keep]]
        + RATING_USER_BIAS_WEIGHT * state.users.rating_offset[user[keep]]
        + rng.normal(0.0, RATING_NOISE_SD, n)
        + np.where(completed[keep], COMPLETED_RATING_SHIFT, ABANDONED_RATING_SHIFT)
    )
    rating = np.clip(np.rint(score), RATING_MIN, RATING_MAX).astype(np.int64)
    when = iso_array(rated[keep])
    table = pa.table(
        {
            "user_id": pa.array(state.users.user_id[user[keep]], type=pa.int64()),
            "content_id": take(titles.ids, title[keep]),
            "rating": pa.array(rating, type=pa.int64()),
            "rated_at": when,
            "updated_at": when,
        }
    )
    cur.execute(
        "create temporary table sim_new_ratings "
        "(user_id bigint, content_id text, rating smallint, rated_at timestamptz, updated_at timestamptz) "
        "on commit drop"
    )
    _copy_temp(cur, "sim_new_ratings", table)
    cur.execute(
        "insert into public.ratings (user_id, content_id, rating, rated_at, updated_at) "
        "select n.user_id, n.content_id, n.rating, n.rated_at, n.updated_at from sim_new_ratings as n "
        "where not exists (select 1 from public.ratings as r where r.user_id = n.user_id "
        "and r.content_id = n.content_id) order by n.rated_at, n.user_id"
    )
    return int(cur.rowcount)


def _copy_temp(cur: Any, name: str, table: pa.Table) -> None:
    """COPY an Arrow table into a temporary table through an in-memory CSV."""
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, write_options=CSV_WRITE_OPTIONS)
    buffer.seek(0)
    statement = sql.SQL("copy {} ({}) from stdin with (format csv, header true)").format(
        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    )
    cur.copy_expert(statement.as_string(cur), buffer)


def _edit_ratings(cur: Any, rng: np.random.Generator, state: _SourceState, window: _SimWindow) -> int:
    """Change a few recent, clean ratings by one star; ``rated_at`` stays, ``updated_at`` moves."""
    since = _ts(window.start - ACTIVITY_LOOKBACK_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select user_id, content_id, min(rating) from ratings where updated_at > %s and updated_at <= %s "
        "and user_id is not null and content_id is not null and rating between %s and %s "
        "and (user_id, content_id) not in (select user_id, content_id from ratings where user_id is not null "
        "and content_id is not null group by user_id, content_id having count(*) > 1) "
        "group by user_id, content_id order by user_id, content_id",
        (since, _ts(window.start), RATING_MIN, RATING_MAX),
    )
    clean_users = set(state.users.user_id.tolist())
    clean_titles = set(state.titles.ids)
    rows = [row for row in cur.fetchall() if row[0] in clean_users and row[1] in clean_titles]
    if not rows:
        return 0
    expected = RATING_EDIT_SHARE * state.daily_ratings * window.days
    n = min(len(rows), max(1, int(rng.poisson(expected))))
    chosen = sorted(rng.choice(len(rows), size=n, replace=False).tolist())
    step = rng.choice((-1, 1), size=n)
    at = window.instants(rng, n)
    values = []
    for position, index in enumerate(chosen):
        user_id, content_id, rating = rows[index]
        new = rating + int(step[position])
        if not RATING_MIN <= new <= RATING_MAX:
            new = rating - int(step[position])
        values.append((int(user_id), content_id, new, _ts(int(at[position]))))
    execute_values(
        cur,
        "update public.ratings as r set rating = v.rating, updated_at = v.updated_at "
        "from (values %s) as v (user_id, content_id, rating, updated_at) "
        "where r.user_id = v.user_id and r.content_id = v.content_id",
        values,
        template="(%s::bigint, %s, %s::smallint, %s::timestamptz)",
    )
    return n


# --------------------------------------------------------------------------- helpers


def _ensure_clock_table(cur: Any) -> None:
    """Create ``public.sim_clock`` (one row per simulation run) if needed."""
    cur.execute(
        sql.SQL(
            "create table if not exists {} ("
            "run_id bigint generated always as identity primary key, "
            "started_from timestamptz not null, simulated_until timestamptz not null, "
            "days integer not null, seed bigint not null, summary jsonb not null, "
            "ran_at timestamptz not null default now())"
        ).format(_table(SIM_CLOCK_TABLE))
    )
    cur.connection.commit()


def _table(name: str) -> sql.Composed:
    """``public.<name>`` as a quoted identifier."""
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def _ts(seconds: int) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(int(seconds), UTC)


__all__ = ["MAX_DAYS", "simulate"]
