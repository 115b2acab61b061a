"""Viewing sessions: when, what, on which device and how long people watch, and viewing_sessions.csv."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from expectations.domain import DEVICE_TYPES, STREAMING_QUALITIES, SUBSCRIPTION_PLANS
from lakehouse.sources.catalogue import MOVIE, SERIES, Catalogue, content_id_for
from lakehouse.sources.common import (
    BAD_TIMESTAMPS,
    DAYS_PER_WEEK,
    HOURS_PER_DAY,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    SECONDS_PER_MINUTE,
    WEEKEND_WEEKDAYS,
    Progress,
    ScaleSpec,
    Window,
    cumulative_rows,
    draw_prefix,
    iso_array,
    probabilities,
    replace_rows,
    sample_rows,
    take,
)
from lakehouse.sources.csv_files import CSV_WRITE_OPTIONS, VIEWING_SESSIONS_SCHEMA
from lakehouse.sources.defects import (
    ABSURD_WATCH_SECONDS,
    DEFECT_KINDS_BY_TABLE,
    DUPLICATE_KEY,
    ENDED_BEFORE_STARTED,
    NEGATIVE_WATCH_SECONDS,
    NULL_KEY,
    ORPHAN_CONTENT_ID,
    ORPHAN_USER_ID,
    UNPARSEABLE_STARTED_AT,
    VIEWING_SESSIONS,
    DefectLog,
    pick_rows,
    planned_counts,
    share_for_chunk,
)
from lakehouse.sources.people import COUNTRIES
from lakehouse.sources.schema import (
    VIEWING_SESSIONS_FILE,
)
from lakehouse.sources.users import DEVICE_MIX_BY_COUNTRY, Users

SESSION_CHUNK_ROWS = 1_000_000


# Share of sessions starting in each UTC hour (weekday and weekend profiles).
HOUR_WEIGHTS_WEEKDAY = (
    35, 20, 12, 8, 6, 7, 12, 20, 25, 28, 30, 33,
    40, 40, 38, 40, 45, 55, 68, 80, 90, 88, 72, 50,
)  # fmt: skip
HOUR_WEIGHTS_WEEKEND = (
    45, 28, 16, 10, 7, 7, 10, 16, 26, 36, 44, 50,
    56, 58, 58, 58, 60, 64, 72, 82, 90, 86, 72, 56,
)  # fmt: skip
WEEKDAY_WEIGHTS = (0.92, 0.90, 0.93, 0.97, 1.10, 1.30, 1.25)  # Monday..Sunday
GROWTH_OVER_WINDOW = 0.15

HANDHELD_DEVICES = frozenset({"mobile", "tablet"})
HOME_DEVICE_SHARE = 0.6  # sessions on the user's usual device
OS_BY_DEVICE: dict[str, dict[str, float]] = {
    "tv": {"Tizen": 0.30, "webOS": 0.25, "Android TV": 0.25, "tvOS": 0.10, "Roku OS": 0.10},
    "mobile": {"iOS": 0.45, "Android": 0.55},
    "tablet": {"iPadOS": 0.60, "Android": 0.40},
    "desktop": {"Windows": 0.65, "macOS": 0.30, "Linux": 0.05},
    "console": {"PlayStation": 0.55, "Xbox": 0.45},
}
# (version, release day relative to the window start)
APP_VERSIONS = (("6.0.3", -75), ("6.1.0", -30), ("6.2.1", 10), ("6.3.0", 40), ("6.4.2", 70))
APP_VERSION_LAG_WEIGHTS = (0.6, 0.3, 0.1)  # latest, previous, the one before

# Shares of each quality in STREAMING_QUALITIES' order (expectations/domain.py).
QUALITY_MIX_BY_DEVICE: dict[str, tuple[float, ...]] = {
    "tv": (0.05, 0.20, 0.35, 0.40),
    "mobile": (0.35, 0.50, 0.15, 0.00),
    "tablet": (0.20, 0.50, 0.30, 0.00),
    "desktop": (0.10, 0.35, 0.45, 0.10),
    "console": (0.05, 0.20, 0.40, 0.35),
}
PLAN_MAX_QUALITY = {"basic": "HD", "standard": "FHD", "premium": "4K"}
BITRATE_KBPS_RANGE: dict[str, tuple[int, int]] = {
    "SD": (700, 2_000),
    "HD": (2_500, 5_000),
    "FHD": (5_500, 9_000),
    "4K": (12_000, 25_000),
}
BITRATE_SD_FRACTION = 1 / 6  # standard deviation as a fraction of the band
BUFFERING_PER_HOUR_BY_QUALITY = {"SD": 0.4, "HD": 0.7, "FHD": 1.0, "4K": 1.6}
HANDHELD_BUFFERING_FACTOR = 1.5

COMPLETION_RATIO = 0.9  # completed when watch_seconds >= 90 % of the duration
COMPLETE_WATCH_SHARE = {MOVIE: 0.45, SERIES: 0.55}
COMPLETE_FRACTION_RANGE = (0.92, 1.0)
PARTIAL_BETA = (1.2, 2.4)
PARTIAL_MAX_FRACTION = 0.88
MIN_WATCH_SECONDS = 10
PAUSE_SHARE = 0.35
PAUSE_MEAN_SECONDS = 300
INGEST_DELAY_MAX_SECONDS = 120
EPISODE_POSITION_SKEW = 1.6  # > 1: early episodes are watched more
IN_PROGRESS_FRACTION_RANGE = (0.2, 0.8)
RATING_CANDIDATE_OVERSAMPLE = 2.0
ORPHAN_USER_ID_BASE = 900_000_000
ORPHAN_CONTENT_NUMBER_BASE = 900_000
ORPHAN_ID_SPAN = 99_999
ABSURD_WATCH_SECONDS_RANGE = (SECONDS_PER_DAY + 1, 30 * SECONDS_PER_DAY)
ENDED_BEFORE_STARTED_GAP_RANGE = (60, 2 * SECONDS_PER_HOUR)


@dataclass(frozen=True)
class RatingCandidates:
    """Sessions sampled as rating opportunities (user and title indices, end, completion)."""

    user: np.ndarray
    title: np.ndarray
    ended_ts: np.ndarray
    completed: np.ndarray


@dataclass(frozen=True)
class SessionTables:
    """Lookup tables for one generation run, built from the module constants."""

    device_by_country: np.ndarray
    os_by_device: np.ndarray
    os_names: tuple[str, ...]
    quality_by_device: np.ndarray
    plan_max_quality: np.ndarray
    bitrate_low: np.ndarray
    bitrate_high: np.ndarray
    buffering_per_hour: np.ndarray
    handheld: np.ndarray
    app_release_day: np.ndarray
    hour_weekday: np.ndarray
    hour_weekend: np.ndarray


def session_tables() -> SessionTables:
    """Turn the distribution constants into arrays indexed by category codes."""
    os_names = tuple(dict.fromkeys(name for mix in OS_BY_DEVICE.values() for name in mix))
    os_matrix = np.asarray([[OS_BY_DEVICE[device].get(name, 0.0) for name in os_names] for device in DEVICE_TYPES])
    return SessionTables(
        device_by_country=cumulative_rows(np.asarray([DEVICE_MIX_BY_COUNTRY[code] for code in COUNTRIES])),
        os_by_device=cumulative_rows(os_matrix),
        os_names=os_names,
        quality_by_device=cumulative_rows(np.asarray([QUALITY_MIX_BY_DEVICE[device] for device in DEVICE_TYPES])),
        plan_max_quality=np.asarray([STREAMING_QUALITIES.index(PLAN_MAX_QUALITY[p]) for p in SUBSCRIPTION_PLANS]),
        bitrate_low=np.asarray([BITRATE_KBPS_RANGE[q][0] for q in STREAMING_QUALITIES]),
        bitrate_high=np.asarray([BITRATE_KBPS_RANGE[q][1] for q in STREAMING_QUALITIES]),
        buffering_per_hour=np.asarray([BUFFERING_PER_HOUR_BY_QUALITY[q] for q in STREAMING_QUALITIES]),
        handheld=np.asarray([device in HANDHELD_DEVICES for device in DEVICE_TYPES]),
        app_release_day=np.asarray([day for _, day in APP_VERSIONS]),
        hour_weekday=probabilities(HOUR_WEIGHTS_WEEKDAY),
        hour_weekend=probabilities(HOUR_WEIGHTS_WEEKEND),
    )


def _day_weights(window: Window) -> np.ndarray:
    """Relative session volume per day: weekly rhythm times mild growth."""
    day = np.arange(window.days)
    weekday = (window.start_weekday + day) % DAYS_PER_WEEK
    weights = np.asarray(WEEKDAY_WEIGHTS)[weekday] * (1 + GROWTH_OVER_WINDOW * day / window.days)
    return weights / weights.sum()


def _day_chunks(day_counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive day ranges holding about SESSION_CHUNK_ROWS sessions each."""
    chunks: list[tuple[int, int]] = []
    first, rows = 0, 0
    for day, count in enumerate(day_counts.tolist()):
        rows += count
        if rows >= SESSION_CHUNK_ROWS:
            chunks.append((first, day + 1))
            first, rows = day + 1, 0
    if first < day_counts.size:
        chunks.append((first, int(day_counts.size)))
    return chunks


def write_sessions(
    path: Path,
    rng: np.random.Generator,
    spec: ScaleSpec,
    window: Window,
    users: Users,
    catalogue: Catalogue,
    rate: float,
    log: DefectLog,
    report: Progress,
) -> tuple[int, RatingCandidates]:
    """Generate and write viewing_sessions.csv chunk by chunk; return rows and rating seeds."""
    tables = session_tables()
    day_counts = rng.multinomial(spec.sessions, _day_weights(window))
    totals = planned_counts(rate, spec.sessions, DEFECT_KINDS_BY_TABLE[VIEWING_SESSIONS])
    candidate_share = min(1.0, RATING_CANDIDATE_OVERSAMPLE * spec.ratings / spec.sessions)
    candidates: list[RatingCandidates] = []
    rows_before, written = 0, 0
    with pacsv.CSVWriter(path, VIEWING_SESSIONS_SCHEMA, write_options=CSV_WRITE_OPTIONS) as writer:
        for first_day, last_day in _day_chunks(day_counts):
            days = np.repeat(np.arange(first_day, last_day), day_counts[first_day:last_day])
            counts = {
                kind: share_for_chunk(total, rows_before, rows_before + days.size, spec.sessions)
                for kind, total in totals.items()
            }
            chunk = _session_chunk(rng, window, users, catalogue, tables, days)
            candidates.append(_candidates(rng, chunk, candidate_share))
            table = _session_table(rng, chunk, rows_before + 1, counts, catalogue, tables, log)
            writer.write_table(table)
            rows_before += days.size
            written += table.num_rows
            report(f"{VIEWING_SESSIONS_FILE}: {rows_before:,}/{spec.sessions:,} sessions")
    merged = RatingCandidates(
        user=np.concatenate([c.user for c in candidates]),
        title=np.concatenate([c.title for c in candidates]),
        ended_ts=np.concatenate([c.ended_ts for c in candidates]),
        completed=np.concatenate([c.completed for c in candidates]),
    )
    return written, merged


def watched_seconds(
    rng: np.random.Generator, series: np.ndarray, duration: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How long each session watches (most finish a title, the rest stop part-way) and pauses, in seconds."""
    m = series.size
    complete_share = np.where(series, COMPLETE_WATCH_SHARE[SERIES], COMPLETE_WATCH_SHARE[MOVIE])
    fraction = np.where(
        rng.random(m) < complete_share,
        rng.uniform(*COMPLETE_FRACTION_RANGE, m),
        rng.beta(*PARTIAL_BETA, m) * PARTIAL_MAX_FRACTION,
    )
    watch = np.clip(np.floor(fraction * duration).astype(np.int64), MIN_WATCH_SECONDS, duration)
    pause = np.where(rng.random(m) < PAUSE_SHARE, np.floor(rng.exponential(PAUSE_MEAN_SECONDS, m)), 0).astype(np.int64)
    return watch, pause


def stream_quality(
    rng: np.random.Generator, tables: SessionTables, device: np.ndarray, plan: np.ndarray, watch: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stream of each session: its quality (the device's mix, capped by the plan), bitrate,
    and expected buffering events (per watched hour of that quality, more on handhelds)."""
    quality = np.minimum(sample_rows(rng, tables.quality_by_device, device), tables.plan_max_quality[plan])
    low, high = tables.bitrate_low[quality], tables.bitrate_high[quality]
    bitrate = np.clip(np.rint(rng.normal((low + high) / 2, (high - low) * BITRATE_SD_FRACTION)), low, high).astype(
        np.int64
    )
    buffering_rate = (
        watch
        / SECONDS_PER_HOUR
        * tables.buffering_per_hour[quality]
        * np.where(tables.handheld[device], HANDHELD_BUFFERING_FACTOR, 1.0)
    )
    return quality, bitrate, buffering_rate


def _session_chunk(
    rng: np.random.Generator,
    window: Window,
    users: Users,
    catalogue: Catalogue,
    tables: SessionTables,
    days: np.ndarray,
) -> dict[str, np.ndarray]:
    """Clean sessions for the given day of each row, as arrays of codes and epoch seconds."""
    m = days.size
    weekend = np.isin((window.start_weekday + days) % DAYS_PER_WEEK, WEEKEND_WEEKDAYS)
    hour = np.where(
        weekend,
        rng.choice(HOURS_PER_DAY, size=m, p=tables.hour_weekend),
        rng.choice(HOURS_PER_DAY, size=m, p=tables.hour_weekday),
    )
    started = np.sort(
        window.start_ts + days * SECONDS_PER_DAY + hour * SECONDS_PER_HOUR + rng.integers(0, SECONDS_PER_HOUR, m)
    )

    signed_up = np.searchsorted(users.signup_ts, started, side="right")
    user = draw_prefix(rng, users.activity_cumulative, signed_up)
    lapsed = started >= users.inactive_from[user]
    stand_in = np.searchsorted(
        users.steady_cumulative,
        rng.random(int(lapsed.sum())) * users.steady_cumulative[-1],
        side="right",
    )
    user[lapsed] = users.steady[np.minimum(stand_in, users.steady.size - 1)]

    released = np.searchsorted(catalogue.added_ts, started, side="right")
    title = draw_prefix(rng, catalogue.popularity_cumulative, released)
    series = catalogue.is_series[title]
    position = np.floor(catalogue.episode_count[title] * rng.random(m) ** EPISODE_POSITION_SKEW).astype(np.int64)
    episode = np.where(series, catalogue.episode_offset[title] + position, 0)
    minutes = np.where(series, catalogue.episode_minutes[episode], catalogue.movie_minutes[title])
    duration = minutes * SECONDS_PER_MINUTE

    watch, pause = watched_seconds(rng, series, duration)
    completed = watch >= COMPLETION_RATIO * duration
    ended = started + watch + pause
    updated = ended + rng.integers(0, INGEST_DELAY_MAX_SECONDS + 1, m)

    country = users.country[user]
    device = np.where(
        rng.random(m) < HOME_DEVICE_SHARE,
        users.home_device[user],
        sample_rows(rng, tables.device_by_country, country),
    )
    operating_system = sample_rows(rng, tables.os_by_device, device)
    day_of_window = (started - window.start_ts) // SECONDS_PER_DAY
    latest = np.searchsorted(tables.app_release_day, day_of_window, side="right") - 1
    lag = rng.choice(len(APP_VERSION_LAG_WEIGHTS), size=m, p=APP_VERSION_LAG_WEIGHTS)
    app_version = np.clip(latest - lag, 0, len(APP_VERSIONS) - 1)
    quality, bitrate, buffering_rate = stream_quality(rng, tables, device, users.plan[user], watch)
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
        "updated": updated,
    }


def _candidates(rng: np.random.Generator, chunk: Mapping[str, np.ndarray], share: float) -> RatingCandidates:
    """Sample clean sessions as the watching that ratings are drawn from."""
    chosen = rng.random(chunk["user"].size) < share
    return RatingCandidates(
        user=chunk["user"][chosen],
        title=chunk["title"][chosen],
        ended_ts=chunk["ended"][chosen],
        completed=chunk["completed"][chosen],
    )


def _session_table(
    rng: np.random.Generator,
    chunk: dict[str, np.ndarray],
    first_id: int,
    counts: Mapping[str, int],
    catalogue: Catalogue,
    tables: SessionTables,
    log: DefectLog,
) -> pa.Table:
    """Inject this chunk's share of session defects and build its Arrow table."""
    m = chunk["user"].size
    session_id = first_id + np.arange(m, dtype=np.int64)
    user_id = chunk["user"] + 1
    watch = chunk["watch"].copy()
    ended = chunk["ended"].copy()
    available = np.ones(m, dtype=bool)
    table_name = VIEWING_SESSIONS

    null_rows = pick_rows(rng, available, counts[NULL_KEY])
    log.record(table_name, NULL_KEY, null_rows.size)
    duplicate_rows = pick_rows(rng, available, counts[DUPLICATE_KEY])
    log.record(table_name, DUPLICATE_KEY, duplicate_rows.size, session_id[duplicate_rows])
    rows = pick_rows(rng, available, counts[ORPHAN_USER_ID])
    user_id[rows] = ORPHAN_USER_ID_BASE + rng.integers(0, ORPHAN_ID_SPAN, rows.size)
    log.record(table_name, ORPHAN_USER_ID, rows.size, session_id[rows])
    orphan_content_rows = pick_rows(rng, available, counts[ORPHAN_CONTENT_ID])
    orphan_content = [
        content_id_for(ORPHAN_CONTENT_NUMBER_BASE + int(k))
        for k in rng.integers(0, ORPHAN_ID_SPAN, orphan_content_rows.size)
    ]
    log.record(table_name, ORPHAN_CONTENT_ID, orphan_content_rows.size, session_id[orphan_content_rows])
    rows = pick_rows(rng, available, counts[NEGATIVE_WATCH_SECONDS])
    watch[rows] = -watch[rows]
    log.record(table_name, NEGATIVE_WATCH_SECONDS, rows.size, session_id[rows])
    rows = pick_rows(rng, available, counts[ABSURD_WATCH_SECONDS])
    watch[rows] = rng.integers(*ABSURD_WATCH_SECONDS_RANGE, rows.size)
    log.record(table_name, ABSURD_WATCH_SECONDS, rows.size, session_id[rows])
    rows = pick_rows(rng, available, counts[ENDED_BEFORE_STARTED])
    ended[rows] = chunk["started"][rows] - rng.integers(*ENDED_BEFORE_STARTED_GAP_RANGE, rows.size)
    log.record(table_name, ENDED_BEFORE_STARTED, rows.size, session_id[rows])
    bad_start_rows = pick_rows(rng, available, counts[UNPARSEABLE_STARTED_AT])
    bad_starts = rng.choice(BAD_TIMESTAMPS, size=bad_start_rows.size)
    log.record(table_name, UNPARSEABLE_STARTED_AT, bad_start_rows.size, session_id[bad_start_rows])

    # Duplicates: the final row is appended; the original position becomes an earlier,
    # in-progress version of the same session.
    order = np.concatenate([np.arange(m), duplicate_rows])
    columns = {name: values[order] for name, values in chunk.items()}
    columns["watch"], columns["ended"] = watch[order], ended[order]
    session_id, user_id = session_id[order], user_id[order]
    id_is_null = np.zeros(order.size, dtype=bool)
    id_is_null[null_rows] = True
    fraction = rng.uniform(*IN_PROGRESS_FRACTION_RANGE, duplicate_rows.size)
    partial = np.floor(columns["watch"][duplicate_rows] * fraction).astype(np.int64)
    columns["watch"][duplicate_rows] = partial
    columns["ended"][duplicate_rows] = columns["started"][duplicate_rows] + partial
    columns["updated"][duplicate_rows] = columns["ended"][duplicate_rows]
    columns["completed"][duplicate_rows] = False
    columns["buffering"][duplicate_rows] = np.floor(columns["buffering"][duplicate_rows] * fraction).astype(np.int64)

    arrays = {
        "session_id": pa.array(session_id, type=pa.int64(), mask=id_is_null),
        "user_id": pa.array(user_id, type=pa.int64()),
        "content_id": replace_rows(take(catalogue.ids, columns["title"]), orphan_content_rows, orphan_content),
        "episode": take(catalogue.episode_codes, columns["episode"], mask=~columns["series"]),
        "started_at": replace_rows(iso_array(columns["started"]), bad_start_rows, bad_starts),
        "ended_at": iso_array(columns["ended"]),
        "watch_seconds": pa.array(columns["watch"], type=pa.int64()),
        "device_type": take(DEVICE_TYPES, columns["device"]),
        "os": take(tables.os_names, columns["os"]),
        "app_version": take([v for v, _ in APP_VERSIONS], columns["app_version"]),
        "streaming_quality": take(STREAMING_QUALITIES, columns["quality"]),
        "avg_bitrate_kbps": pa.array(columns["bitrate"], type=pa.int64()),
        "buffering_events": pa.array(columns["buffering"], type=pa.int64()),
        "completed": pa.array(columns["completed"], type=pa.bool_()),
        "country": take(COUNTRIES, columns["country"]),
        "updated_at": iso_array(columns["updated"]),
    }
    return pa.table(arrays, schema=VIEWING_SESSIONS_SCHEMA)
