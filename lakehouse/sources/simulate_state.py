"""What a simulated day starts from: the users, titles and volumes the sources hold now, read
from PostgreSQL and MongoDB (defective rows left out), and the window the day covers."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from psycopg2 import sql
from pymongo.database import Database

from expectations.domain import (
    BILLING_CYCLES,
    DEVICE_TYPES,
    MAX_RATING,
    MIN_RATING,
    SUBSCRIPTION_PLANS,
    SUBSCRIPTION_STATUSES,
)
from lakehouse.sources.catalogue import (
    CONTENT_COUNTRIES,
    MOVIE,
    SERIES,
)
from lakehouse.sources.common import (
    SECONDS_PER_DAY,
)
from lakehouse.sources.load import (
    SIM_CLOCK_TABLE,
    SourceLoadError,
)
from lakehouse.sources.people import COUNTRIES
from lakehouse.sources.schema import CONTENT_COLLECTION, SCHEMA, TABLES

GENERATOR_WINDOW_DAYS = 90  # the generator's window: turns its shares into daily rates

# Recent history that sets the pace: daily volume, who watches, what is popular.
VOLUME_LOOKBACK_DAYS = 7
ACTIVITY_LOOKBACK_DAYS = 28


BASE_TITLE_WEIGHT = 0.2  # every clean title can be found


DEFAULT_RATING_MEAN = 3.5
MIN_RATING_SHARE = 0.01


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CONTENT_NUMBER = re.compile(r"^c(\d+)$")


@dataclass(frozen=True)
class SimWindow:
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
class SourceUsers:
    """Clean users (unique, non-null id, values the contract accepts), ordered by user_id."""

    user_id: np.ndarray
    country: np.ndarray  # index into COUNTRIES
    plan: np.ndarray  # index into SUBSCRIPTION_PLANS
    billing: np.ndarray  # index into BILLING_CYCLES
    status: np.ndarray  # index into SUBSCRIPTION_STATUSES
    recent_sessions: np.ndarray
    home_device: np.ndarray  # index into DEVICE_TYPES, -1 when unknown
    rating_offset: np.ndarray  # user's mean rating minus the global mean (0 when unknown)


@dataclass
class Titles:
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
class SourceState:
    """What the simulation reads from the sources before changing them."""

    clock: int
    users: SourceUsers
    titles: Titles
    max_session_id: int
    max_content_number: int
    total_documents: int
    daily_sessions: float
    rating_share: float
    daily_ratings: float
    app_versions: list[str]  # recent versions, oldest first
    global_rating: float


def read_state(conn: Any, database: Database) -> SourceState:
    """Read the clock, clean users and titles and recent activity; ValueError when not loaded."""
    with conn.cursor() as cur:
        for spec in TABLES:
            cur.execute("select to_regclass(%s) is not null", (f"{SCHEMA}.{spec.name}",))
            if not cur.fetchone()[0]:
                raise SourceLoadError(f"simulate: {spec.qualified} does not exist; run `lakehouse load-sources` first")
        _ensure_clock_table(cur)
        clocks = []
        for spec in TABLES:
            cur.execute(sql.SQL("select max(updated_at) from {}").format(source_table(spec.name)))
            clocks.append(cur.fetchone()[0])
        cur.execute(sql.SQL("select max(simulated_until) from {}").format(source_table(SIM_CLOCK_TABLE)))
        clocks.append(cur.fetchone()[0])
        documents = list(database[CONTENT_COLLECTION].find({}, sort=[("_id", 1)]))
        clocks.extend(d.get("updated_at") for d in documents if isinstance(d.get("updated_at"), datetime))
        instants = [value.timestamp() for value in clocks if value is not None]
        if not instants or not documents:
            raise SourceLoadError("simulate: the sources are empty; run `lakehouse load-sources` first")
        clock = math.ceil(max(instants))

        cur.execute("select max(session_id) from viewing_sessions")
        max_session_id = int(cur.fetchone()[0] or 0)
        since = utc_datetime(clock - VOLUME_LOOKBACK_DAYS * SECONDS_PER_DAY)
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
        cur.execute("select avg(rating) from ratings where rating between %s and %s", (MIN_RATING, MAX_RATING))
        global_rating = float(cur.fetchone()[0] or DEFAULT_RATING_MEAN)
        users = _read_users(cur, clock, global_rating)
        titles = _read_titles(cur, documents, clock, global_rating)
    conn.rollback()
    if users.user_id.size == 0 or not (users.status == SUBSCRIPTION_STATUSES.index("active")).any():
        raise SourceLoadError("simulate: public.users holds no clean active user to simulate")
    if titles.n == 0:
        raise SourceLoadError(f"simulate: {database.name}.{CONTENT_COLLECTION} holds no clean title to simulate")
    numbers = [int(m.group(1)) for d in documents if (m := CONTENT_NUMBER.match(str(d.get("_id"))))]
    daily_sessions = max(recent_sessions / VOLUME_LOOKBACK_DAYS, 1.0)
    return SourceState(
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


def _read_users(cur: Any, clock: int, global_rating: float) -> SourceUsers:
    """Clean users with their recent activity, usual device and rating habit."""
    cur.execute(
        "select user_id, country, subscription_plan, billing_cycle, status, birth_date from users "
        "where user_id in (select user_id from users where user_id is not null group by user_id having count(*) = 1) "
        "order by user_id"
    )
    rows = [row for row in cur.fetchall() if _clean_user(row)]
    user_id = np.asarray([row[0] for row in rows], dtype=np.int64)
    since = utc_datetime(clock - ACTIVITY_LOOKBACK_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select user_id, count(*), mode() within group (order by device_type) from viewing_sessions "
        "where updated_at > %s and user_id is not null group by user_id order by user_id",
        (since,),
    )
    activity = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    cur.execute(
        "select user_id, avg(rating) from ratings where rating between %s and %s and user_id is not null "
        "group by user_id order by user_id",
        (MIN_RATING, MAX_RATING),
    )
    rating_mean = {row[0]: float(row[1]) for row in cur.fetchall()}
    ids = user_id.tolist()
    return SourceUsers(
        user_id=user_id,
        country=np.asarray([COUNTRIES.index(row[1]) for row in rows], dtype=np.int64),
        plan=np.asarray([SUBSCRIPTION_PLANS.index(row[2]) for row in rows], dtype=np.int64),
        billing=np.asarray([BILLING_CYCLES.index(row[3]) for row in rows], dtype=np.int64),
        status=np.asarray([SUBSCRIPTION_STATUSES.index(row[4]) for row in rows], dtype=np.int64),
        recent_sessions=np.asarray([activity.get(i, (0, None))[0] for i in ids], dtype=np.float64),
        home_device=np.asarray(
            [DEVICE_TYPES.index(d) if (d := activity.get(i, (0, None))[1]) in DEVICE_TYPES else -1 for i in ids],
            dtype=np.int64,
        ),
        rating_offset=np.asarray([rating_mean.get(i, global_rating) - global_rating for i in ids]),
    )


def _clean_user(row: Sequence[Any]) -> bool:
    """True when a user row has only values the contract accepts."""
    _, country, plan, billing, status, birth_date = row
    if (
        country not in COUNTRIES
        or plan not in SUBSCRIPTION_PLANS
        or billing not in BILLING_CYCLES
        or status not in SUBSCRIPTION_STATUSES
    ):
        return False
    if not isinstance(birth_date, str) or not ISO_DATE.match(birth_date):
        return False
    try:
        date.fromisoformat(birth_date)
    except ValueError:
        return False
    return True


def _read_titles(cur: Any, documents: list[dict[str, Any]], clock: int, global_rating: float) -> Titles:
    """Clean titles (every contract field well typed) with recent popularity and mean rating."""
    clean = sorted(
        (d for d in documents if _clean_document(d)),
        key=lambda d: (d["added_at"], d["_id"]),
    )
    since = utc_datetime(clock - ACTIVITY_LOOKBACK_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select content_id, count(*) from viewing_sessions where updated_at > %s and content_id is not null "
        "group by content_id order by content_id",
        (since,),
    )
    recent = {row[0]: int(row[1]) for row in cur.fetchall()}
    cur.execute(
        "select content_id, avg(rating) from ratings where rating between %s and %s and content_id is not null "
        "group by content_id order by content_id",
        (MIN_RATING, MAX_RATING),
    )
    rating_mean = {row[0]: float(row[1]) for row in cur.fetchall()}
    return titles_from_documents(
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


def titles_from_documents(documents: list[dict[str, Any]], weight: list[float], rating_mean: list[float]) -> Titles:
    """Array form of clean documents (already in ``added_at`` order)."""
    offsets, counts, codes, minutes = [], [], [], []
    for document in documents:
        episodes = _episodes(document) if document["type"] == SERIES else []
        offsets.append(len(codes))
        counts.append(len(episodes))
        codes.extend(code for code, _ in episodes)
        minutes.extend(m for _, m in episodes)
    return Titles(
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


def _ensure_clock_table(cur: Any) -> None:
    """Create ``public.sim_clock`` (one row per simulation run) if needed."""
    cur.execute(
        sql.SQL(
            "create table if not exists {} ("
            "run_id bigint generated always as identity primary key, "
            "started_from timestamptz not null, simulated_until timestamptz not null, "
            "days integer not null, seed bigint not null, summary jsonb not null, "
            "ran_at timestamptz not null default now())"
        ).format(source_table(SIM_CLOCK_TABLE))
    )
    cur.connection.commit()


def source_table(name: str) -> sql.Composed:
    """``public.<name>`` as a quoted identifier."""
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def utc_datetime(seconds: int) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(int(seconds), UTC)
