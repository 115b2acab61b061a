"""A simulated day's viewing: new sessions drawn from the same model as the generator (volume
following the hour of day), copied into PostgreSQL, and updates to recent ones (late reports,
resumed sessions)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql
from psycopg2.extras import execute_values

from expectations.domain import DEVICE_TYPES, STREAMING_QUALITIES, SUBSCRIPTION_STATUSES
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
)
from lakehouse.sources.csv_files import CSV_WRITE_OPTIONS, VIEWING_SESSIONS_COLUMNS, VIEWING_SESSIONS_SCHEMA
from lakehouse.sources.load import (
    parse_timestamp,
)
from lakehouse.sources.people import COUNTRIES
from lakehouse.sources.sessions import (
    APP_VERSION_LAG_WEIGHTS,
    COMPLETE_FRACTION_RANGE,
    COMPLETION_RATIO,
    EPISODE_POSITION_SKEW,
    HOME_DEVICE_SHARE,
    HOUR_WEIGHTS_WEEKDAY,
    HOUR_WEIGHTS_WEEKEND,
    INGEST_DELAY_MAX_SECONDS,
    WEEKDAY_WEIGHTS,
    SessionTables,
    session_tables,
    stream_quality,
    watched_seconds,
)
from lakehouse.sources.simulate_changes import NEVER, UserChanges
from lakehouse.sources.simulate_state import SimWindow, SourceState, SourceUsers, Titles, source_table, utc_datetime

BASE_USER_WEIGHT = 0.1  # an active user who did not watch recently may come back


SESSION_CHUNK_ROWS = 1_000_000


# Sessions updated after the fact.
UPDATE_CANDIDATE_DAYS = 2
UPDATE_SHARE_OF_NEW = 0.03  # besides the sessions a previous run left in progress
IN_PROGRESS_HORIZON_SECONDS = 2 * SECONDS_PER_HOUR
LATE_REPORT_MAX_SECONDS = 6 * SECONDS_PER_HOUR
RESUMED_FRACTION_RANGE = (0.2, 0.9)  # share of the remaining duration watched on resume


@dataclass
class NewSessions:
    """What the new sessions left for the ratings: clean, finished sessions only."""

    rows: int
    in_progress: int
    user: list[np.ndarray]  # index into clean users
    title: list[np.ndarray]
    ended: list[np.ndarray]
    completed: list[np.ndarray]


def _hourly_expectation(state: SourceState, window: SimWindow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def write_new_sessions(
    cur: Any,
    rng: np.random.Generator,
    state: SourceState,
    titles: Titles,
    changes: UserChanges,
    window: SimWindow,
) -> NewSessions:
    """Draw the new sessions hour by hour and COPY them in chunks; return what ratings need."""
    slot_start, slot_end, expected = _hourly_expectation(state, window)
    per_slot = rng.poisson(expected)
    users = state.users
    pool = _UserPool.build(users, changes)
    tables = session_tables()
    out = NewSessions(rows=0, in_progress=0, user=[], title=[], ended=[], completed=[])
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
    def build(cls, users: SourceUsers, changes: UserChanges) -> _UserPool:
        """Pool of active users and their weights, from the users and their planned changes."""
        n = users.user_id.size
        index = np.flatnonzero(users.status == SUBSCRIPTION_STATUSES.index("active"))
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
    titles: Titles,
    tables: SessionTables,
    state: SourceState,
    window: SimWindow,
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
    titles: Titles,
    tables: SessionTables,
    users: SourceUsers,
    state: SourceState,
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
            "device_type": take(DEVICE_TYPES, chunk["device"]),
            "os": take(tables.os_names, chunk["os"]),
            "app_version": take(state.app_versions, chunk["app_version"]),
            "streaming_quality": take(STREAMING_QUALITIES, chunk["quality"]),
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
        source_table(name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cur.copy_expert(statement.as_string(cur), buffer)


def update_sessions(
    cur: Any, rng: np.random.Generator, state: SourceState, titles: Titles, window: SimWindow, new_rows: int
) -> int:
    """Finish recent unfinished sessions later than first reported; return how many changed."""
    since = utc_datetime(window.start - UPDATE_CANDIDATE_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select session_id, content_id, episode, started_at, ended_at, watch_seconds, updated_at "
        "from viewing_sessions where updated_at > %s and updated_at <= %s and completed = false "
        "and session_id is not null and watch_seconds >= 0 order by session_id",
        (since, utc_datetime(window.start)),
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
            (int(i), iso(int(e)), int(w), bool(c), utc_datetime(int(u)))
            for i, e, w, c, u in zip(session_id, new_ended, new_watch, completed, updated, strict=True)
        ],
        template="(%s::bigint, %s, %s::integer, %s::boolean, %s::timestamptz)",
    )
    return n


def _duration_lookup(titles: Titles) -> dict[tuple[str, str | None], int]:
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
