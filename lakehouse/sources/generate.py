"""Deterministic synthetic source data for the video-streaming lakehouse.

:func:`generate` writes five files into one directory::

    users.csv             -> PostgreSQL users
    viewing_sessions.csv  -> PostgreSQL viewing_sessions
    ratings.csv           -> PostgreSQL ratings
    content.jsonl         -> MongoDB content (one JSON document per line)
    manifest.json         -> row counts, sha256 and the injected defects with their keys

Determinism: the same ``seed``, ``scale``, ``defect_rate`` and ``start`` give byte-identical
files (for the same numpy, pyarrow and Faker versions; the manifest records them). All
randomness comes from one ``numpy.random.default_rng(seed)`` and from Faker instances seeded
with ``seed_instance``; nothing reads the clock. Times are UTC; CSV timestamps are ISO-8601
with a ``Z`` suffix (``2026-01-03T10:15:00Z``), dates are ``YYYY-MM-DD``.

Time: sessions, ratings, plan changes, churn and new titles fall into the window
``[start, start + days)`` (default start 2026-01-01T00:00:00Z, 90 days). Users signed up and
titles were added before the window too (the history the source already holds). A session that
starts near the end may end a few hours after it.

Volume is vectorised NumPy; Faker only fills small pools (names, cities, people) that NumPy
draws from; viewing_sessions.csv is generated and written in day-aligned chunks of about
:data:`SESSION_CHUNK_ROWS` rows so memory stays bounded at every scale.

Realism the analysis relies on
------------------------------
- Zipf-like title popularity (rank ** -:data:`ZIPF_EXPONENT`); a few "cold" titles are never
  watched.
- Daily rhythm (evening peak, night trough, in UTC: the platform's reference time zone, so the
  marts need no time-zone table) and weekly rhythm (Friday-Sunday busier), plus mild growth.
- Device mix by country (e.g. India mostly mobile, the US mostly TV); OS by device; quality by
  device, capped by the plan (basic: HD, standard: FHD, premium: 4K); 4K never on mobile or
  tablet; bitrate inside a band per quality; buffering grows with watch time and quality.
- Movies last 80-180 minutes, episodes 20-60; sessions on series carry an existing
  ``SxxEyy`` episode; ``completed`` is ``watch_seconds >= 0.9 * duration``;
  ``watch_seconds <= ended_at - started_at`` (pauses).
- Users watch only after signing up and before churning or pausing; sessions start only after
  the title's ``added_at``. About a fifth of the titles arrive during the window.
- Plan changes, pauses and churn during the window: ``updated_at`` is the latest change;
  ``monthly_price`` follows plan and billing cycle (:data:`MONTHLY_PRICE_USD`).
- Ratings come from sessions (users rate what they watched, lower when they gave up); some
  titles are polarised; some ratings are edited later (``updated_at > rated_at``).

Defects
-------
``defect_rate`` is the fraction of rows per file that carry a defect, shared equally between
the kinds of that file (at least one row per kind when the rate is positive). Every kind is
counted separately in ``manifest.json`` under ``defects.<table>.<kind>`` with ``count`` and the
affected keys (``keys``: the row's primary key as written in the file: ``user_id``,
``session_id``, ``_id``, or ``[user_id, content_id]`` for ratings; empty when the key itself is
null). Key lists are complete for tiny and small; for scales with a file above
:data:`FULL_KEY_LIST_MAX_ROWS` rows (medium, large) only the first :data:`KEY_LIST_CAP` keys per
kind are kept and ``keys_truncated`` is set, while ``count`` stays complete. How the pipeline
is expected to treat each kind:

users.csv
    ``null_key``: an extra row, copy of a user, with an empty ``user_id`` -> quarantine.
    ``duplicate_key``: an extra row for an existing ``user_id`` with a different plan and a later
    ``updated_at`` -> handled: MERGE keeps the newest ``updated_at``.
    ``malformed_birth_date``: ``birth_date`` such as ``not-a-date`` or ``1985-02-30`` ->
    quarantine. Chosen among users without sessions and ratings, so that quarantining them
    creates no orphans downstream (as far as such users exist).
    ``unknown_plan``: ``subscription_plan`` outside basic/standard/premium (platinum, family,
    trial) -> passes bronze, flagged by the quality gate (accepted values).
content.jsonl
    ``missing_title``: no ``title`` field -> bronze keeps a null, flagged by the gate.
    ``release_year_as_string``: e.g. ``"nineteen-ninety"`` -> quarantine.
    ``duration_minutes_as_string``: a movie with e.g. ``"95 min"`` -> quarantine.
    ``unknown_extra_field``: schema drift (``trailer_url``, ``imdb_id``, ``box_office_usd``) ->
    handled: kept in ``_rescued_data``.
    ``malformed_updated_at``: ``updated_at`` that is not a timestamp -> quarantine.
    ``missing_optional_field``: no ``director``, ``cast`` or ``maturity_rating`` -> handled: null.
    The quarantining kinds prefer cold titles (no sessions, no ratings), as for users.
viewing_sessions.csv
    ``null_key``: empty ``session_id`` -> quarantine.
    ``duplicate_key``: the session appears twice: an in-progress row (partial watch, not
    completed) and, later in the file, the final row with a later ``updated_at`` -> handled:
    MERGE keeps the newest.
    ``orphan_user_id`` (``user_id`` >= :data:`ORPHAN_USER_ID_BASE`), ``orphan_content_id``
    (``c9xxxxx``) -> pass bronze, flagged by the gate.
    ``negative_watch_seconds``, ``absurd_watch_seconds`` (more than a day),
    ``ended_before_started`` -> pass bronze (they type fine), flagged by the gate, filtered in
    silver.
    ``unparseable_started_at``: e.g. ``2026-02-30T25:61:00Z`` -> quarantine.
ratings.csv
    ``null_key``: empty ``content_id`` -> quarantine.
    ``duplicate_key``: a re-rating, extra row with the same (user_id, content_id), another
    rating and a later ``updated_at`` -> handled: MERGE keeps the newest.
    ``orphan_user_id``, ``orphan_content_id`` -> pass bronze, flagged by the gate.
    ``rating_out_of_range``: 0 or 6 -> passes bronze, flagged by the gate.

Value defects are applied in place (the clean value is lost); ``null_key`` and
``duplicate_key`` rows of users and ratings, and the final rows of duplicated sessions, are
extra rows appended at the end of the file, so a file holds nominal rows plus those extras.
The machine-readable forms are :data:`lakehouse.sources.defects.DEFECT_KINDS_DOC` and
:data:`~lakehouse.sources.defects.DEFECT_TREATMENT`, copied into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from faker import Faker

from lakehouse.sources.defects import (
    ABSURD_WATCH_SECONDS,
    CONTENT,
    DEFECT_KINDS_BY_TABLE,
    DEFECT_KINDS_DOC,
    DEFECT_TREATMENT,
    DUPLICATE_KEY,
    DURATION_MINUTES_AS_STRING,
    ENDED_BEFORE_STARTED,
    MALFORMED_BIRTH_DATE,
    MALFORMED_UPDATED_AT,
    MISSING_OPTIONAL_FIELD,
    MISSING_TITLE,
    NEGATIVE_WATCH_SECONDS,
    NULL_KEY,
    ORPHAN_CONTENT_ID,
    ORPHAN_USER_ID,
    RATING_OUT_OF_RANGE,
    RATINGS,
    RELEASE_YEAR_AS_STRING,
    UNKNOWN_EXTRA_FIELD,
    UNKNOWN_PLAN,
    UNPARSEABLE_STARTED_AT,
    USERS,
    VIEWING_SESSIONS,
    DefectLog,
    pick_rows,
    planned_counts,
    share_for_chunk,
)
from lakehouse.sources.schema import (
    CONTENT_FILE,
    MANIFEST_FILE,
    RATINGS_FILE,
    RATINGS_TABLE,
    USERS_FILE,
    USERS_TABLE,
    VIEWING_SESSIONS_FILE,
    VIEWING_SESSIONS_TABLE,
)

# --------------------------------------------------------------------------- scales, files


@dataclass(frozen=True)
class ScaleSpec:
    """Nominal sizes of one scale (defect extras come on top) and the window length in days."""

    users: int
    titles: int
    sessions: int
    ratings: int
    days: int


SCALES: dict[str, ScaleSpec] = {
    "tiny": ScaleSpec(users=1_000, titles=300, sessions=20_000, ratings=3_000, days=90),
    "small": ScaleSpec(users=20_000, titles=2_000, sessions=500_000, ratings=60_000, days=90),
    "medium": ScaleSpec(users=150_000, titles=8_000, sessions=5_000_000, ratings=500_000, days=90),
    "large": ScaleSpec(users=500_000, titles=20_000, sessions=20_000_000, ratings=2_000_000, days=90),
}

PARTIAL_SUFFIX = ".partial"

DEFAULT_SCALE = "tiny"
DEFAULT_SEED = 42
DEFAULT_DEFECT_RATE = 0.01
MAX_DEFECT_RATE = 0.5
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

SESSION_CHUNK_ROWS = 1_000_000
CSV_WRITE_CHUNK_ROWS = 1_000_000
FULL_KEY_LIST_MAX_ROWS = 1_000_000
KEY_LIST_CAP = 1_000
HASH_BLOCK_BYTES = 1 << 20
FAKER_SEED_STRIDE = 101

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3_600
SECONDS_PER_DAY = 86_400
HOURS_PER_DAY = 24
DAYS_PER_WEEK = 7
DAYS_PER_YEAR = 365.25
WEEKEND_WEEKDAYS = (5, 6)  # Saturday, Sunday (Monday is 0)
NEVER = np.iinfo(np.int64).max

USERS_COLUMNS = USERS_TABLE.column_names
VIEWING_SESSIONS_COLUMNS = VIEWING_SESSIONS_TABLE.column_names
RATINGS_COLUMNS = RATINGS_TABLE.column_names

PRICE_TYPE = pa.decimal128(6, 2)


def _csv_schema(columns: Sequence[str], types: Mapping[str, pa.DataType]) -> pa.Schema:
    """Arrow schema of a CSV file: the given types, strings for everything else."""
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in columns])


USERS_SCHEMA = _csv_schema(USERS_COLUMNS, {"user_id": pa.int64(), "monthly_price": PRICE_TYPE})
VIEWING_SESSIONS_SCHEMA = _csv_schema(
    VIEWING_SESSIONS_COLUMNS,
    {
        "session_id": pa.int64(),
        "user_id": pa.int64(),
        "watch_seconds": pa.int64(),
        "avg_bitrate_kbps": pa.int64(),
        "buffering_events": pa.int64(),
        "completed": pa.bool_(),
    },
)
RATINGS_SCHEMA = _csv_schema(RATINGS_COLUMNS, {"user_id": pa.int64(), "rating": pa.int64()})
# RFC 4180 CSV: text values quoted, numbers and booleans (true/false) bare, null = empty field.
CSV_WRITE_OPTIONS = pacsv.WriteOptions(include_header=True, quoting_style="needed")

# --------------------------------------------------------------------------- users

COUNTRIES = ("US", "GB", "DE", "FR", "ES", "BR", "MX", "IN", "JP", "CA")
COUNTRY_WEIGHTS = (0.30, 0.09, 0.09, 0.08, 0.06, 0.10, 0.06, 0.10, 0.06, 0.06)
COUNTRY_LOCALES = {
    "US": "en_US",
    "GB": "en_GB",
    "DE": "de_DE",
    "FR": "fr_FR",
    "ES": "es_ES",
    "BR": "pt_BR",
    "MX": "es_MX",
    "IN": "en_IN",
    "JP": "ja_JP",
    "CA": "en_CA",
}
ROMANIZED_NAME_COUNTRIES = frozenset({"JP"})  # Latin-script names, so emails stay ASCII
FIRST_NAMES_PER_SEX = 60
LAST_NAMES_PER_COUNTRY = 100
CITIES_PER_COUNTRY = 25
PEOPLE_PER_COUNTRY = 150  # cast and directors
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "mail.net")
EMAIL_DOMAIN_WEIGHTS = (0.45, 0.18, 0.12, 0.12, 0.05, 0.08)
FALLBACK_SLUG = "user"

GENDERS = ("female", "male", "non-binary", "undisclosed")
GENDER_WEIGHTS = (0.48, 0.47, 0.02, 0.03)
FEMALE, MALE = 0, 1
MIN_AGE_YEARS = 18
MAX_AGE_YEARS = 80
AGE_GAMMA_SHAPE = 2.0
AGE_GAMMA_SCALE_YEARS = 9.0

SIGNUP_HISTORY_DAYS = 4 * 365
NEW_USER_SHARE = 0.12  # signed up during the window
INACTIVE_USER_SHARE = 0.08  # signed up, never watched
ACTIVITY_SIGMA = 1.0  # lognormal spread of sessions per user
RATING_BIAS_SD = 0.4

PLANS = ("basic", "standard", "premium")
PLAN_WEIGHTS = (0.38, 0.40, 0.22)
BILLING_CYCLES = ("monthly", "annual")
ANNUAL_SHARE = 0.25
MONTHLY_PRICE_USD: dict[tuple[str, str], str] = {
    ("basic", "monthly"): "7.99",
    ("basic", "annual"): "6.66",
    ("standard", "monthly"): "12.99",
    ("standard", "annual"): "10.83",
    ("premium", "monthly"): "17.99",
    ("premium", "annual"): "14.99",
}
PLAN_CHANGE_SHARE = 0.22
PLAN_CHANGE_LOOKBACK_DAYS = 365
CHURN_PROBABILITY_BY_PLAN = {"basic": 0.16, "standard": 0.11, "premium": 0.08}
ANNUAL_CHURN_FACTOR = 0.5
PAUSE_PROBABILITY = 0.04
STATUSES = ("active", "paused", "churned")
ACTIVE, PAUSED, CHURNED = 0, 1, 2

# --------------------------------------------------------------------------- content

CONTENT_ID_PREFIX = "c"
CONTENT_ID_DIGITS = 6
MOVIE, SERIES = "movie", "series"
NEW_TITLE_SHARE = 0.20  # added during the window
CATALOGUE_HISTORY_DAYS = 5 * 365
SERIES_SHARE = 0.35
ZIPF_EXPONENT = 1.05
COLD_TITLE_SHARE = 0.03
MOVIE_MINUTES_MEAN = 108
MOVIE_MINUTES_SD = 22
MOVIE_MINUTES_RANGE = (80, 180)
EPISODE_MINUTES_RANGE = (20, 60)
EPISODE_BASE_MINUTES = (22, 25, 30, 42, 45, 50, 55, 60)
EPISODE_JITTER_MINUTES = 3
SEASON_COUNT_P = 0.45
MAX_SEASONS = 8
EPISODES_PER_SEASON_RANGE = (6, 13)
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Horror",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "Reality",
)
GENRE_WEIGHTS = (9, 5, 4, 10, 6, 3, 12, 3, 4, 5, 4, 6, 5, 8, 2)
FAMILY_GENRES = frozenset({"Animation", "Family"})
MAX_GENRES = 3
CAST_SIZE_RANGE = (3, 8)
DIRECTOR_POOL_SHARE = 0.2
CONTENT_COUNTRIES = ("US", "GB", "FR", "DE", "ES", "JP", "KR", "IN", "BR", "MX", "IT", "CA")
CONTENT_COUNTRY_WEIGHTS = (40, 10, 6, 5, 6, 7, 7, 6, 4, 3, 3, 3)
LANGUAGE_BY_COUNTRY = {
    "US": "en",
    "GB": "en",
    "CA": "en",
    "FR": "fr",
    "DE": "de",
    "ES": "es",
    "MX": "es",
    "JP": "ja",
    "KR": "ko",
    "IN": "hi",
    "BR": "pt",
    "IT": "it",
}
MOVIE_MATURITY = ("G", "PG", "PG-13", "R", "NC-17")
MOVIE_MATURITY_WEIGHTS = (0.08, 0.20, 0.37, 0.32, 0.03)
SERIES_MATURITY = ("TV-Y", "TV-G", "TV-PG", "TV-14", "TV-MA")
SERIES_MATURITY_WEIGHTS = (0.05, 0.10, 0.22, 0.33, 0.30)
FAMILY_MATURITY = {MOVIE: ("G", "PG"), SERIES: ("TV-Y", "TV-G")}
OLDEST_RELEASE_YEAR = 1950
RELEASE_LAG_P = 0.12  # geometric lag in years between release and catalogue addition
NEW_TITLE_MAX_LAG_YEARS = 1
METADATA_CORRECTION_SHARE = 0.20
TITLE_QUALITY_MEAN = 3.5
TITLE_QUALITY_SD = 0.6
POLARISED_SHARE = 0.06
TITLE_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Hidden", "Last", "Crimson", "Endless", "Frozen", "Wild",
    "Dark", "Lonely", "Burning", "Lost", "Secret", "Electric", "Quiet", "Savage", "Bright",
    "Hollow", "Midnight", "Northern", "Velvet", "Iron", "Paper", "Glass",
)  # fmt: skip
TITLE_NOUNS = (
    "Harbor", "Kingdom", "Signal", "Garden", "River", "Empire", "Witness", "Orchard", "Storm",
    "Promise", "Frontier", "Mirror", "Summer", "Horizon", "Machine", "Island", "Echo", "Letter",
    "Border", "Circus", "Lighthouse", "Tide", "Station", "Crown", "Legacy",
)  # fmt: skip
TITLE_PATTERNS = (
    "The {adj} {noun}",
    "{noun} of {place}",
    "{name}'s {noun}",
    "{adj} {noun}s",
    "Return to {place}",
    "The Last {noun}",
    "{adj} {place}",
)
DEFAULT_PLACE_COUNTRY = "US"  # city pool for productions from countries without users

# --------------------------------------------------------------------------- sessions

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

DEVICES = ("tv", "mobile", "tablet", "desktop", "console")
HANDHELD_DEVICES = frozenset({"mobile", "tablet"})
DEVICE_MIX_BY_COUNTRY: dict[str, tuple[float, ...]] = {
    "US": (0.38, 0.25, 0.10, 0.15, 0.12),
    "GB": (0.35, 0.27, 0.12, 0.16, 0.10),
    "DE": (0.33, 0.27, 0.10, 0.20, 0.10),
    "FR": (0.32, 0.28, 0.12, 0.20, 0.08),
    "ES": (0.30, 0.32, 0.10, 0.20, 0.08),
    "BR": (0.22, 0.48, 0.08, 0.15, 0.07),
    "MX": (0.24, 0.46, 0.08, 0.15, 0.07),
    "IN": (0.12, 0.68, 0.06, 0.12, 0.02),
    "JP": (0.30, 0.30, 0.12, 0.13, 0.15),
    "CA": (0.37, 0.26, 0.11, 0.15, 0.11),
}
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

QUALITIES = ("SD", "HD", "FHD", "4K")
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

# --------------------------------------------------------------------------- ratings

RATING_MIN, RATING_MAX = 1, 5
RATING_CANDIDATE_OVERSAMPLE = 2.0
RATING_DELAY_MEAN_SECONDS = 3 * SECONDS_PER_HOUR
RATING_NOISE_SD = 0.7
COMPLETED_RATING_SHIFT = 0.3
ABANDONED_RATING_SHIFT = -0.6
POLARISED_HIGH_SHARE = 0.55
POLARISED_NOISE_SD = 0.5
RATING_EDIT_SHARE = 0.05
RATING_EDIT_STEPS = (-1, 1)

# --------------------------------------------------------------------------- defect values

ORPHAN_USER_ID_BASE = 900_000_000
ORPHAN_CONTENT_NUMBER_BASE = 900_000
ORPHAN_ID_SPAN = 99_999
BAD_BIRTH_DATES = ("not-a-date", "1985-02-30", "31/12/1990", "0000-00-00")
UNKNOWN_PLANS = ("platinum", "family", "trial")
BAD_TIMESTAMPS = (
    "not-a-timestamp",
    "2026-02-30T25:61:00Z",
    "yesterday evening",
    "0000-00-00T00:00:00Z",
)
BAD_RELEASE_YEARS = ("nineteen-ninety", "unknown", "19??", "TBA")
DURATION_STRING_FORMAT = "{minutes} min"
EXTRA_CONTENT_FIELDS = ("trailer_url", "imdb_id", "box_office_usd")
OPTIONAL_CONTENT_FIELDS = ("director", "cast", "maturity_rating")
ABSURD_WATCH_SECONDS_RANGE = (SECONDS_PER_DAY + 1, 30 * SECONDS_PER_DAY)
ENDED_BEFORE_STARTED_GAP_RANGE = (60, 2 * SECONDS_PER_HOUR)
OUT_OF_RANGE_RATINGS = (0, 6)

Progress = Callable[[str], None]

# --------------------------------------------------------------------------- public API


def generate(
    out_dir: Path,
    *,
    scale: str = DEFAULT_SCALE,
    seed: int = DEFAULT_SEED,
    defect_rate: float = DEFAULT_DEFECT_RATE,
    start: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write users.csv, viewing_sessions.csv, ratings.csv, content.jsonl and manifest.json.

    All five go to ``out_dir`` (created if missing); returns the manifest dict. ``start`` is
    the first instant of the activity window and must be midnight UTC (a naive datetime is
    taken as UTC); the window lasts ``SCALES[scale].days`` days. Files are written under
    temporary names and renamed at the end, manifest last; a failed run removes its temporary
    files and leaves no manifest.json behind that does not match the data files. Raises
    ValueError naming the parameter on bad input.
    """
    spec = _validate_scale(scale)
    _validate_seed(seed)
    rate = _validate_defect_rate(defect_rate)
    window_start = _validate_start(start)
    target = _validate_out_dir(out_dir)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress: must be a callable or None, got {type(progress).__name__}")
    report: Progress = progress if progress is not None else _silent

    target.mkdir(parents=True, exist_ok=True)
    partial = {name: target / f"{name}{PARTIAL_SUFFIX}" for name in (*_DATA_FILES, MANIFEST_FILE)}
    try:
        manifest = _generate_files(partial, spec, scale, int(seed), rate, window_start, report)
    except BaseException:
        for path in partial.values():
            path.unlink(missing_ok=True)
        raise
    # Manifest out first and back in last: a manifest.json present always describes the
    # data files next to it.
    (target / MANIFEST_FILE).unlink(missing_ok=True)
    for name in (*_DATA_FILES, MANIFEST_FILE):
        os.replace(partial[name], target / name)
    report(f"{MANIFEST_FILE}: written to {target}")
    return manifest


def _generate_files(
    partial: Mapping[str, Path],
    spec: ScaleSpec,
    scale: str,
    seed: int,
    rate: float,
    window_start: datetime,
    report: Progress,
) -> dict[str, Any]:
    """Generate every file under its temporary name; return the manifest."""
    window = _Window(start_ts=int(window_start.timestamp()), days=spec.days)
    rng = np.random.default_rng(seed)
    log = DefectLog(key_cap=_key_cap(spec))
    rows: dict[str, int] = {}

    report(f"generate: scale={scale} seed={seed} defect_rate={rate} start={_iso(window.start_ts)}")
    pools = _build_pools(seed)
    users = _build_users(rng, spec, window, pools)
    rows[USERS_FILE] = _write_users(partial[USERS_FILE], rng, users, pools, window, rate, log)
    report(f"{USERS_FILE}: {rows[USERS_FILE]:,} rows")

    catalogue = _build_catalogue(rng, spec, window, pools)
    rows[CONTENT_FILE] = _write_content(partial[CONTENT_FILE], rng, catalogue, rate, log)
    report(f"{CONTENT_FILE}: {rows[CONTENT_FILE]:,} documents")

    rows[VIEWING_SESSIONS_FILE], candidates = _write_sessions(
        partial[VIEWING_SESSIONS_FILE], rng, spec, window, users, catalogue, rate, log, report
    )
    rows[RATINGS_FILE] = _write_ratings(
        partial[RATINGS_FILE], rng, spec, window, users, catalogue, candidates, rate, log
    )
    report(f"{RATINGS_FILE}: {rows[RATINGS_FILE]:,} rows")

    manifest = _manifest(scale, seed, rate, spec, window, partial, rows, log)
    partial[MANIFEST_FILE].write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


_DATA_FILES = (USERS_FILE, CONTENT_FILE, VIEWING_SESSIONS_FILE, RATINGS_FILE)

# --------------------------------------------------------------------------- validation


def _silent(_message: str) -> None:
    """Default progress sink: say nothing."""


def _validate_scale(scale: object) -> ScaleSpec:
    """Return the spec of a known scale, or raise ValueError naming ``scale``."""
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(f"scale: unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return SCALES[scale]


def _validate_seed(seed: object) -> None:
    """Accept non-negative integers (not bools) as seeds."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")


def _validate_defect_rate(defect_rate: object) -> float:
    """Return the rate as float if it is a finite number within [0, MAX_DEFECT_RATE]."""
    is_number = isinstance(defect_rate, numbers.Real) and not isinstance(defect_rate, bool)
    rate = float(defect_rate) if is_number else math.nan  # type: ignore[arg-type]
    if not math.isfinite(rate) or not 0.0 <= rate <= MAX_DEFECT_RATE:
        raise ValueError(f"defect_rate: must be a number between 0 and {MAX_DEFECT_RATE}, got {defect_rate!r}")
    return rate


def _validate_start(start: object) -> datetime:
    """Return ``start`` as an aware UTC datetime at midnight (naive means UTC)."""
    if start is None:
        return DEFAULT_START
    if not isinstance(start, datetime):
        # ValueError, not TypeError: the CLI reports every bad argument the same way.
        raise ValueError(f"start: must be a datetime, got {type(start).__name__}")
    aware = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    if aware != aware.replace(hour=0, minute=0, second=0, microsecond=0):
        raise ValueError(f"start: must be midnight UTC (00:00:00), got {aware.isoformat()}")
    return aware


def _validate_out_dir(out_dir: object) -> Path:
    """Return ``out_dir`` as a Path that is not an existing regular file."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ValueError(f"out_dir: must be a path, got {type(out_dir).__name__}")
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out_dir: {path} exists and is not a directory")
    return path


def _key_cap(spec: ScaleSpec) -> int | None:
    """Keys stored per defect kind: all of them for small files, a sample for big ones."""
    biggest = max(spec.users, spec.titles, spec.sessions, spec.ratings)
    return None if biggest <= FULL_KEY_LIST_MAX_ROWS else KEY_LIST_CAP


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Window:
    """The activity window: ``days`` days from ``start_ts`` (epoch seconds, midnight UTC)."""

    start_ts: int
    days: int

    @property
    def end_ts(self) -> int:
        """First second after the window."""
        return self.start_ts + self.days * SECONDS_PER_DAY

    @property
    def seconds(self) -> int:
        """Length of the window in seconds."""
        return self.days * SECONDS_PER_DAY

    @property
    def start_weekday(self) -> int:
        """Weekday of the first day, Monday = 0."""
        return datetime.fromtimestamp(self.start_ts, UTC).weekday()


def _iso(ts: int) -> str:
    """One epoch second as ISO-8601 UTC with a Z suffix."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_array(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds as ISO-8601 UTC strings (``YYYY-MM-DDTHH:MM:SSZ``), vectorised."""
    text = pc.cast(pa.array(seconds, type=pa.timestamp("s")), pa.string())
    text = pc.utf8_replace_slice(text, start=10, stop=11, replacement="T")
    return pc.binary_join_element_wise(text, "Z", "")


def _date_array(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds as ``YYYY-MM-DD`` strings."""
    days = np.floor_divide(seconds, SECONDS_PER_DAY).astype(np.int32)
    return pc.cast(pa.array(days, type=pa.date32()), pa.string())


def _take(pool: Sequence[Any] | pa.Array, indices: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Pick pool entries by index (null where ``mask`` is true), as an Arrow array."""
    values = pool if isinstance(pool, pa.Array) else pa.array(pool)
    return pc.take(values, pa.array(indices, type=pa.int64(), mask=mask))


def _replace(array: pa.Array, rows: np.ndarray, values: Sequence[Any]) -> pa.Array:
    """Replace ``array[rows]`` (sorted positions) by ``values``."""
    if rows.size == 0:
        return array
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(array, pa.array(mask), pa.array(list(values), type=array.type))


def _probabilities(weights: Sequence[float]) -> np.ndarray:
    """Weights normalised to probabilities."""
    values = np.asarray(weights, dtype=np.float64)
    return values / values.sum()


def _cumulative_rows(matrix: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative probabilities whose last column is exactly 1."""
    cumulative = np.cumsum(matrix / matrix.sum(axis=1, keepdims=True), axis=1)
    cumulative[:, -1] = 1.0
    return cumulative


def _sample_rows(rng: np.random.Generator, cumulative: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Draw one category per row from the distribution of that row's group."""
    u = 1.0 - rng.random(group.size)  # (0, 1]: zero-probability categories are never drawn
    return (cumulative[group] < u[:, None]).sum(axis=1)


def _draw_prefix(rng: np.random.Generator, cumulative: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Draw by weight among the first ``available[i]`` entities, for every row i."""
    totals = cumulative[available - 1]
    picked = np.searchsorted(cumulative, rng.random(available.size) * totals, side="right")
    return np.minimum(picked, available - 1)


def _between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Uniform integer epoch seconds in [low, high) (``low`` where the range is empty)."""
    span = np.maximum(high - low, 0)
    return low + np.floor(rng.random(low.size) * span).astype(np.int64)


def _slug(text: str) -> str:
    """Lower-case ASCII letters only, for e-mail local parts."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = "".join(ch for ch in ascii_text.lower() if ch.isalnum())
    return slug or FALLBACK_SLUG


def _content_id(number: int) -> str:
    """``c000123`` style content id."""
    return f"{CONTENT_ID_PREFIX}{number:0{CONTENT_ID_DIGITS}d}"


def _year(seconds: np.ndarray) -> np.ndarray:
    """Calendar year of epoch seconds."""
    return seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


# --------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class _Pools:
    """Small Faker-made pools that NumPy draws from. Offsets index the flat arrays."""

    first_names: list[str]
    first_offset: np.ndarray  # (country, sex)
    first_count: np.ndarray
    last_names: list[str]
    last_offset: np.ndarray  # (country,)
    last_count: np.ndarray
    cities: list[str]
    city_offset: np.ndarray
    city_count: np.ndarray
    people: list[str]


def _unique(values: list[str]) -> list[str]:
    """Distinct values in first-seen order."""
    return list(dict.fromkeys(values))


def _build_pools(seed: int) -> _Pools:
    """Names, cities and people per country from seeded, locale-specific Faker instances."""
    first: list[str] = []
    first_offset = np.zeros((len(COUNTRIES), 2), dtype=np.int64)
    first_count = np.zeros((len(COUNTRIES), 2), dtype=np.int64)
    last: list[str] = []
    cities: list[str] = []
    people: list[str] = []
    last_offset, last_count = [], []
    city_offset, city_count = [], []
    for index, country in enumerate(COUNTRIES):
        fake = Faker(COUNTRY_LOCALES[country])
        fake.seed_instance(seed * FAKER_SEED_STRIDE + index)
        romanized = country in ROMANIZED_NAME_COUNTRIES
        prefix = "first_romanized_name" if romanized else "first_name"
        last_name = fake.last_romanized_name if romanized else fake.last_name
        for sex, suffix in ((FEMALE, "_female"), (MALE, "_male")):
            maker = getattr(fake, prefix + suffix)
            names = _unique([maker() for _ in range(FIRST_NAMES_PER_SEX)])
            first_offset[index, sex], first_count[index, sex] = len(first), len(names)
            first.extend(names)
        surnames = _unique([last_name() for _ in range(LAST_NAMES_PER_COUNTRY)])
        last_offset.append(len(last))
        last_count.append(len(surnames))
        last.extend(surnames)
        places = _unique([fake.city() for _ in range(CITIES_PER_COUNTRY)])
        city_offset.append(len(cities))
        city_count.append(len(places))
        cities.extend(places)
        given = fake.first_romanized_name if romanized else fake.first_name
        people.extend(f"{given()} {last_name()}" for _ in range(PEOPLE_PER_COUNTRY))
    return _Pools(
        first_names=first,
        first_offset=first_offset,
        first_count=first_count,
        last_names=last,
        last_offset=np.asarray(last_offset),
        last_count=np.asarray(last_count),
        cities=cities,
        city_offset=np.asarray(city_offset),
        city_count=np.asarray(city_count),
        people=_unique(people),
    )


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class _Users:
    """Users in signup order (``user_id = index + 1``); categorical columns as codes."""

    signup_ts: np.ndarray
    birth_day: np.ndarray  # days since epoch
    gender: np.ndarray
    country: np.ndarray
    first_name: np.ndarray  # index into pools.first_names
    last_name: np.ndarray
    city: np.ndarray
    email_domain: np.ndarray
    plan: np.ndarray
    billing: np.ndarray
    status: np.ndarray
    updated_ts: np.ndarray
    inactive_from: np.ndarray  # churn or pause instant, NEVER if active
    activity: np.ndarray  # relative sessions per day, 0 = never watches
    activity_cumulative: np.ndarray
    steady: np.ndarray  # indices of users active over the whole window
    steady_cumulative: np.ndarray
    home_device: np.ndarray
    rating_bias: np.ndarray

    @property
    def n(self) -> int:
        """Number of users."""
        return int(self.signup_ts.size)


def _build_users(rng: np.random.Generator, spec: ScaleSpec, window: _Window, pools: _Pools) -> _Users:
    """Draw the user base: signups, demographics, plans, changes, churn and activity."""
    n = spec.users
    joined_in_window = rng.random(n) < NEW_USER_SHARE
    u = rng.random(n)
    history = SIGNUP_HISTORY_DAYS * SECONDS_PER_DAY
    before = window.start_ts - 1 - np.floor(history * (1 - np.sqrt(u))).astype(np.int64)
    during = window.start_ts + np.floor(u * window.seconds).astype(np.int64)
    signup = np.sort(np.where(joined_in_window, during, before))

    age_years = np.clip(
        MIN_AGE_YEARS + rng.gamma(AGE_GAMMA_SHAPE, AGE_GAMMA_SCALE_YEARS, n),
        MIN_AGE_YEARS,
        MAX_AGE_YEARS,
    )
    birth_day = window.start_ts // SECONDS_PER_DAY - np.floor(age_years * DAYS_PER_YEAR)
    gender = rng.choice(len(GENDERS), size=n, p=_probabilities(GENDER_WEIGHTS))
    name_sex = np.where(gender == FEMALE, FEMALE, np.where(gender == MALE, MALE, 0))
    undecided = (gender != FEMALE) & (gender != MALE)
    name_sex = np.where(undecided, rng.integers(0, 2, n), name_sex)
    country = rng.choice(len(COUNTRIES), size=n, p=_probabilities(COUNTRY_WEIGHTS))
    first_name = pools.first_offset[country, name_sex] + np.floor(
        rng.random(n) * pools.first_count[country, name_sex]
    ).astype(np.int64)
    last_name = pools.last_offset[country] + np.floor(rng.random(n) * pools.last_count[country]).astype(np.int64)
    city = pools.city_offset[country] + np.floor(rng.random(n) * pools.city_count[country]).astype(np.int64)
    email_domain = rng.choice(len(EMAIL_DOMAINS), size=n, p=_probabilities(EMAIL_DOMAIN_WEIGHTS))

    plan = rng.choice(len(PLANS), size=n, p=_probabilities(PLAN_WEIGHTS))
    billing = (rng.random(n) < ANNUAL_SHARE).astype(np.int64)
    changed = rng.random(n) < PLAN_CHANGE_SHARE
    change_from = np.maximum(signup, window.start_ts - PLAN_CHANGE_LOOKBACK_DAYS * SECONDS_PER_DAY)
    change_ts = _between(rng, change_from, np.full(n, window.end_ts))
    churn_p = np.asarray([CHURN_PROBABILITY_BY_PLAN[name] for name in PLANS])[plan]
    churn_p = churn_p * np.where(billing == 1, ANNUAL_CHURN_FACTOR, 1.0)
    draw = rng.random(n)
    status = np.where(draw < churn_p, CHURNED, np.where(draw < churn_p + PAUSE_PROBABILITY, PAUSED, ACTIVE))
    status[0] = ACTIVE  # the earliest user anchors every draw "among users signed up by t"
    status_from = np.maximum(signup, window.start_ts)
    status_ts = _between(rng, status_from, np.full(n, window.end_ts))
    lapsed = status != ACTIVE
    inactive_from = np.where(lapsed, status_ts, NEVER)
    updated = np.where(changed, np.maximum(signup, change_ts), signup)
    updated = np.where(lapsed, np.maximum(updated, status_ts), updated)

    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, n)
    activity[rng.random(n) < INACTIVE_USER_SHARE] = 0.0
    activity[0] = max(activity[0], 1.0)
    steady = np.flatnonzero((signup <= window.start_ts) & (status == ACTIVE) & (activity > 0))
    device_cumulative = _cumulative_rows(np.asarray([DEVICE_MIX_BY_COUNTRY[code] for code in COUNTRIES]))
    home_device = _sample_rows(rng, device_cumulative, country)
    rating_bias = rng.normal(0.0, RATING_BIAS_SD, n)
    return _Users(
        signup_ts=signup,
        birth_day=birth_day.astype(np.int64),
        gender=gender,
        country=country,
        first_name=first_name,
        last_name=last_name,
        city=city,
        email_domain=email_domain,
        plan=plan,
        billing=billing,
        status=status,
        updated_ts=updated,
        inactive_from=inactive_from,
        activity=activity,
        activity_cumulative=np.cumsum(activity),
        steady=steady,
        steady_cumulative=np.cumsum(activity[steady]),
        home_device=home_device,
        rating_bias=rating_bias,
    )


def _price_pool() -> pa.Array:
    """Monthly prices indexed by ``plan * len(BILLING_CYCLES) + billing``."""
    prices = [Decimal(MONTHLY_PRICE_USD[(plan, cycle)]) for plan in PLANS for cycle in BILLING_CYCLES]
    return pa.array(prices, type=PRICE_TYPE)


def _write_users(
    path: Path,
    rng: np.random.Generator,
    users: _Users,
    pools: _Pools,
    window: _Window,
    rate: float,
    log: DefectLog,
) -> int:
    """Inject the users defects and write users.csv; return the number of data rows."""
    n = users.n
    counts = planned_counts(rate, n, DEFECT_KINDS_BY_TABLE[USERS])
    available = np.ones(n, dtype=bool)
    null_source = pick_rows(rng, available, counts[NULL_KEY])
    duplicate_source = pick_rows(rng, available, counts[DUPLICATE_KEY])
    malformed = pick_rows(rng, available, counts[MALFORMED_BIRTH_DATE], preferred=users.activity == 0)
    unknown_plan = pick_rows(rng, available, counts[UNKNOWN_PLAN])

    source = np.concatenate([np.arange(n), duplicate_source, null_source])
    is_duplicate = np.zeros(source.size, dtype=bool)
    is_duplicate[n : n + duplicate_source.size] = True
    is_null = np.zeros(source.size, dtype=bool)
    is_null[n + duplicate_source.size :] = True

    plan = users.plan[source].copy()
    plan[is_duplicate] = (plan[is_duplicate] + rng.integers(1, len(PLANS), duplicate_source.size)) % len(PLANS)
    updated = users.updated_ts[source].copy()
    later_from = updated[is_duplicate] + 1
    updated[is_duplicate] = _between(
        rng, later_from, np.maximum(np.full(later_from.size, window.end_ts), later_from + 1)
    )
    user_id = source + 1
    id_text = pc.cast(pa.array(user_id), pa.string())
    first_slugs = [_slug(name) for name in pools.first_names]
    last_slugs = [_slug(name) for name in pools.last_names]
    email = pc.binary_join_element_wise(
        _take(first_slugs, users.first_name[source]),
        ".",
        _take(last_slugs, users.last_name[source]),
        id_text,
        "@",
        _take(EMAIL_DOMAINS, users.email_domain[source]),
        "",
    )
    birth = _replace(
        _date_array(users.birth_day[source] * SECONDS_PER_DAY),
        malformed,
        rng.choice(BAD_BIRTH_DATES, size=malformed.size),
    )
    plan_text = _replace(_take(PLANS, plan), unknown_plan, rng.choice(UNKNOWN_PLANS, size=unknown_plan.size))
    billing = users.billing[source]
    columns = {
        "user_id": pa.array(user_id, type=pa.int64(), mask=is_null),
        "email": email,
        "first_name": _take(pools.first_names, users.first_name[source]),
        "last_name": _take(pools.last_names, users.last_name[source]),
        "birth_date": birth,
        "gender": _take(GENDERS, users.gender[source]),
        "country": _take(COUNTRIES, users.country[source]),
        "city": _take(pools.cities, users.city[source]),
        "signup_date": _date_array(users.signup_ts[source]),
        "subscription_plan": plan_text,
        "billing_cycle": _take(BILLING_CYCLES, billing),
        "monthly_price": _take(_price_pool(), plan * len(BILLING_CYCLES) + billing),
        "status": _take(STATUSES, users.status[source]),
        "updated_at": _iso_array(updated),
    }
    _write_csv(path, pa.table(columns, schema=USERS_SCHEMA), USERS_SCHEMA)

    log.record(USERS, NULL_KEY, null_source.size)
    log.record(USERS, DUPLICATE_KEY, duplicate_source.size, duplicate_source + 1)
    log.record(USERS, MALFORMED_BIRTH_DATE, malformed.size, malformed + 1)
    log.record(USERS, UNKNOWN_PLAN, unknown_plan.size, unknown_plan + 1)
    return int(source.size)


def _write_csv(path: Path, table: pa.Table, schema: pa.Schema) -> None:
    """Write one table as CSV with a header, in chunks of CSV_WRITE_CHUNK_ROWS rows."""
    with pacsv.CSVWriter(path, schema, write_options=CSV_WRITE_OPTIONS) as writer:
        for offset in range(0, max(table.num_rows, 1), CSV_WRITE_CHUNK_ROWS):
            writer.write_table(table.slice(offset, CSV_WRITE_CHUNK_ROWS))


# --------------------------------------------------------------------------- content


@dataclass(frozen=True)
class _Episodes:
    """Seasons and episodes of all series as flat arrays, in title order.

    Per series (``series_index`` gives its title): ``seasons``, ``season_offset``. Per season:
    ``season_number``, ``first_episode``, ``episode_total``. Per episode: ``number``,
    ``title``, ``minutes``, ``code`` (``S01E03``). Per title (0 for movies): ``offset``,
    ``count`` into the flat episode arrays.
    """

    series_index: np.ndarray
    seasons: np.ndarray
    season_offset: np.ndarray
    season_number: np.ndarray
    first_episode: np.ndarray
    episode_total: np.ndarray
    number: np.ndarray
    title: list[str]
    minutes: np.ndarray
    code: list[str]
    offset: np.ndarray
    count: np.ndarray


def _offsets(sizes: np.ndarray) -> np.ndarray:
    """Start positions of consecutive blocks of the given sizes."""
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def _build_episodes(rng: np.random.Generator, is_series: np.ndarray) -> _Episodes:
    """Draw seasons, episodes and episode durations (one base length per series)."""
    series_index = np.flatnonzero(is_series)
    seasons = np.clip(rng.geometric(SEASON_COUNT_P, series_index.size), 1, MAX_SEASONS)
    low, high = EPISODES_PER_SEASON_RANGE
    episode_total = rng.integers(low, high + 1, int(seasons.sum()))
    season_offset = _offsets(seasons)
    season_series = np.repeat(np.arange(series_index.size), seasons)
    season_number = np.arange(season_series.size) - season_offset[season_series] + 1
    first_episode = _offsets(episode_total)
    episode_season = np.repeat(np.arange(season_series.size), episode_total)
    number = np.arange(episode_season.size) - first_episode[episode_season] + 1
    episode_series = season_series[episode_season]
    base_minutes = rng.choice(EPISODE_BASE_MINUTES, size=series_index.size)
    jitter = rng.integers(-EPISODE_JITTER_MINUTES, EPISODE_JITTER_MINUTES + 1, number.size)
    minutes = np.clip(base_minutes[episode_series] + jitter, *EPISODE_MINUTES_RANGE)
    adjective = rng.integers(0, len(TITLE_ADJECTIVES), number.size).tolist()
    noun = rng.integers(0, len(TITLE_NOUNS), number.size).tolist()
    per_series = np.bincount(episode_series, minlength=series_index.size)
    offset = np.zeros(is_series.size, dtype=np.int64)
    count = np.zeros(is_series.size, dtype=np.int64)
    offset[series_index] = _offsets(per_series)
    count[series_index] = per_series
    seasons_of_episodes = season_number[episode_season].tolist()
    return _Episodes(
        series_index=series_index,
        seasons=seasons,
        season_offset=season_offset,
        season_number=season_number,
        first_episode=first_episode,
        episode_total=episode_total,
        number=number,
        title=[f"{TITLE_ADJECTIVES[a]} {TITLE_NOUNS[b]}" for a, b in zip(adjective, noun, strict=True)],
        minutes=minutes,
        code=[
            f"S{season:02d}E{episode:02d}" for season, episode in zip(seasons_of_episodes, number.tolist(), strict=True)
        ],
        offset=offset,
        count=count,
    )


@dataclass(frozen=True)
class _Catalogue:
    """Titles in ``added_at`` order (``_id`` number = index + 1) and their flat episodes."""

    ids: pa.Array
    added_ts: np.ndarray
    updated_ts: np.ndarray
    is_series: np.ndarray
    popularity: np.ndarray  # relative sessions, 0 = cold title
    popularity_cumulative: np.ndarray
    movie_minutes: np.ndarray
    episode_offset: np.ndarray  # first flat episode of a series
    episode_count: np.ndarray
    episode_codes: pa.Array  # flat, ``S01E03``
    episode_minutes: np.ndarray  # flat
    quality: np.ndarray  # mean rating
    polarised: np.ndarray
    documents: list[dict[str, Any]]

    @property
    def n(self) -> int:
        """Number of titles."""
        return int(self.added_ts.size)


def _build_catalogue(rng: np.random.Generator, spec: ScaleSpec, window: _Window, pools: _Pools) -> _Catalogue:
    """Draw the titles: arrival, type, popularity, structure and their documents."""
    n = spec.titles
    arrives_in_window = rng.random(n) < NEW_TITLE_SHARE
    u = rng.random(n)
    history = CATALOGUE_HISTORY_DAYS * SECONDS_PER_DAY
    before = window.start_ts - 1 - np.floor(history * (1 - np.sqrt(u))).astype(np.int64)
    during = window.start_ts + np.floor(u * window.seconds).astype(np.int64)
    added = np.sort(np.where(arrives_in_window, during, before))
    is_series = rng.random(n) < SERIES_SHARE

    popularity = (rng.permutation(n) + 1.0) ** -ZIPF_EXPONENT
    cold = rng.random(n) < COLD_TITLE_SHARE
    cold[0] = False  # the oldest title anchors every draw "among titles added by t"
    popularity[cold] = 0.0
    movie_minutes = np.clip(np.rint(rng.normal(MOVIE_MINUTES_MEAN, MOVIE_MINUTES_SD, n)), *MOVIE_MINUTES_RANGE).astype(
        np.int64
    )
    episodes = _build_episodes(rng, is_series)

    updated = np.where(
        rng.random(n) < METADATA_CORRECTION_SHARE,
        _between(rng, np.maximum(added, window.start_ts), np.full(n, window.end_ts)),
        added,
    )
    added_year = _year(added)
    lag = np.where(
        added >= window.start_ts,
        rng.integers(0, NEW_TITLE_MAX_LAG_YEARS + 1, n),
        rng.geometric(RELEASE_LAG_P, n) - 1,
    )
    release_year = np.clip(added_year - lag, OLDEST_RELEASE_YEAR, added_year)
    quality = rng.normal(TITLE_QUALITY_MEAN, TITLE_QUALITY_SD, n)
    polarised = rng.random(n) < POLARISED_SHARE

    documents = _documents(
        rng,
        is_series=is_series,
        added=added,
        updated=updated,
        release_year=release_year,
        movie_minutes=movie_minutes,
        episodes=episodes,
        pools=pools,
    )
    has_episodes = episodes.minutes.size > 0
    return _Catalogue(
        ids=pa.array([_content_id(i + 1) for i in range(n)], type=pa.string()),
        added_ts=added,
        updated_ts=updated,
        is_series=is_series,
        popularity=popularity,
        popularity_cumulative=np.cumsum(popularity),
        movie_minutes=movie_minutes,
        episode_offset=episodes.offset,
        episode_count=episodes.count,
        # one dummy entry keeps lookups valid when a catalogue has no series at all
        episode_codes=pa.array(episodes.code if has_episodes else [""], type=pa.string()),
        episode_minutes=episodes.minutes if has_episodes else np.zeros(1, dtype=np.int64),
        quality=quality,
        polarised=polarised,
        documents=documents,
    )


def _documents(
    rng: np.random.Generator,
    *,
    is_series: np.ndarray,
    added: np.ndarray,
    updated: np.ndarray,
    release_year: np.ndarray,
    movie_minutes: np.ndarray,
    episodes: _Episodes,
    pools: _Pools,
) -> list[dict[str, Any]]:
    """Build the Mongo documents (one loop over titles, which are few)."""
    n = is_series.size
    genre_keys = np.log(_probabilities(GENRE_WEIGHTS))[None, :] + rng.gumbel(size=(n, len(GENRES)))
    genre_order = np.argsort(-genre_keys, axis=1)[:, :MAX_GENRES]  # weighted, no repeats
    genre_count = rng.integers(1, MAX_GENRES + 1, n)
    country = rng.choice(len(CONTENT_COUNTRIES), size=n, p=_probabilities(CONTENT_COUNTRY_WEIGHTS))
    titles = _titles(rng, country, pools)
    movie_rating = rng.choice(len(MOVIE_MATURITY), size=n, p=_probabilities(MOVIE_MATURITY_WEIGHTS))
    series_rating = rng.choice(len(SERIES_MATURITY), size=n, p=_probabilities(SERIES_MATURITY_WEIGHTS))
    family_rating = rng.integers(0, len(FAMILY_MATURITY[MOVIE]), n)
    cast_size = rng.integers(CAST_SIZE_RANGE[0], CAST_SIZE_RANGE[1] + 1, n)
    director = rng.integers(0, max(1, int(len(pools.people) * DIRECTOR_POOL_SHARE)), n)
    added_text = _iso_array(added).to_pylist()
    updated_text = _iso_array(updated).to_pylist()
    series_position = np.full(n, -1, dtype=np.int64)
    series_position[episodes.series_index] = np.arange(episodes.series_index.size)

    documents: list[dict[str, Any]] = []
    for i in range(n):
        genres = [GENRES[g] for g in genre_order[i, : genre_count[i]].tolist()]
        kind = SERIES if is_series[i] else MOVIE
        if FAMILY_GENRES.intersection(genres):
            maturity = FAMILY_MATURITY[kind][family_rating[i]]
        elif kind == SERIES:
            maturity = SERIES_MATURITY[series_rating[i]]
        else:
            maturity = MOVIE_MATURITY[movie_rating[i]]
        document: dict[str, Any] = {
            "_id": _content_id(i + 1),
            "title": titles[i],
            "type": kind,
            "genres": genres,
            "release_year": int(release_year[i]),
        }
        if kind == MOVIE:
            document["duration_minutes"] = int(movie_minutes[i])
        else:
            document["seasons"] = _seasons(episodes, int(series_position[i]))
        cast = rng.choice(len(pools.people), size=int(cast_size[i]), replace=False)
        production = CONTENT_COUNTRIES[country[i]]
        document.update(
            cast=[pools.people[p] for p in cast.tolist()],
            director=pools.people[int(director[i])],
            language=LANGUAGE_BY_COUNTRY[production],
            country=production,
            maturity_rating=maturity,
            added_at=added_text[i],
            updated_at=updated_text[i],
        )
        documents.append(document)
    return documents


def _titles(rng: np.random.Generator, country: np.ndarray, pools: _Pools) -> list[str]:
    """Made-up titles from word patterns; places come from the production country."""
    n = country.size
    pattern = rng.integers(0, len(TITLE_PATTERNS), n)
    adjective = rng.integers(0, len(TITLE_ADJECTIVES), n)
    noun = rng.integers(0, len(TITLE_NOUNS), n)
    name = rng.integers(0, len(pools.first_names), n)
    pool_country = np.asarray(
        [
            COUNTRIES.index(code) if code in COUNTRIES else COUNTRIES.index(DEFAULT_PLACE_COUNTRY)
            for code in CONTENT_COUNTRIES
        ]
    )[country]
    place = pools.city_offset[pool_country] + np.floor(rng.random(n) * pools.city_count[pool_country]).astype(np.int64)
    return [
        TITLE_PATTERNS[pattern[i]].format(
            adj=TITLE_ADJECTIVES[adjective[i]],
            noun=TITLE_NOUNS[noun[i]],
            place=pools.cities[place[i]],
            name=pools.first_names[name[i]],
        )
        for i in range(n)
    ]


def _seasons(episodes: _Episodes, position: int) -> list[dict[str, Any]]:
    """Nested ``seasons[{season_number, episodes[...]}]`` of the series at ``position``."""
    first_season = int(episodes.season_offset[position])
    result = []
    for season in range(first_season, first_season + int(episodes.seasons[position])):
        start = int(episodes.first_episode[season])
        stop = start + int(episodes.episode_total[season])
        result.append(
            {
                "season_number": int(episodes.season_number[season]),
                "episodes": [
                    {
                        "episode_number": int(episodes.number[e]),
                        "title": episodes.title[e],
                        "duration_minutes": int(episodes.minutes[e]),
                    }
                    for e in range(start, stop)
                ],
            }
        )
    return result


def _write_content(path: Path, rng: np.random.Generator, catalogue: _Catalogue, rate: float, log: DefectLog) -> int:
    """Inject the content defects and write content.jsonl; return the number of documents."""
    n = catalogue.n
    counts = planned_counts(rate, n, DEFECT_KINDS_BY_TABLE[CONTENT])
    available = np.ones(n, dtype=bool)
    cold = catalogue.popularity == 0
    movies = ~catalogue.is_series
    documents = [dict(document) for document in catalogue.documents]
    ids = catalogue.ids.to_pylist()

    rows = pick_rows(rng, available, counts[MISSING_TITLE])
    for row in rows.tolist():
        del documents[row]["title"]
    log.record(CONTENT, MISSING_TITLE, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[RELEASE_YEAR_AS_STRING], preferred=cold)
    for row, value in zip(rows.tolist(), rng.choice(BAD_RELEASE_YEARS, rows.size), strict=True):
        documents[row]["release_year"] = str(value)
    log.record(CONTENT, RELEASE_YEAR_AS_STRING, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[DURATION_MINUTES_AS_STRING], eligible=movies, preferred=cold)
    for row in rows.tolist():
        minutes = documents[row]["duration_minutes"]
        documents[row]["duration_minutes"] = DURATION_STRING_FORMAT.format(minutes=minutes)
    log.record(CONTENT, DURATION_MINUTES_AS_STRING, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[UNKNOWN_EXTRA_FIELD])
    fields = rng.integers(0, len(EXTRA_CONTENT_FIELDS), rows.size)
    for row, field in zip(rows.tolist(), fields.tolist(), strict=True):
        name = EXTRA_CONTENT_FIELDS[field]
        documents[row][name] = _extra_field_value(name, ids[row], rng)
    log.record(CONTENT, UNKNOWN_EXTRA_FIELD, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[MALFORMED_UPDATED_AT], preferred=cold)
    for row, value in zip(rows.tolist(), rng.choice(BAD_TIMESTAMPS, rows.size), strict=True):
        documents[row]["updated_at"] = str(value)
    log.record(CONTENT, MALFORMED_UPDATED_AT, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[MISSING_OPTIONAL_FIELD])
    fields = rng.integers(0, len(OPTIONAL_CONTENT_FIELDS), rows.size)
    for row, field in zip(rows.tolist(), fields.tolist(), strict=True):
        del documents[row][OPTIONAL_CONTENT_FIELDS[field]]
    log.record(CONTENT, MISSING_OPTIONAL_FIELD, rows.size, (ids[r] for r in rows.tolist()))

    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for document in documents:
            handle.write(json.dumps(document, ensure_ascii=False))
            handle.write("\n")
    return n


def _extra_field_value(name: str, content_id: str, rng: np.random.Generator) -> Any:
    """Make up a plausible value for a field the contract does not know."""
    if name == "trailer_url":
        return f"https://cdn.example.com/trailers/{content_id}.mp4"
    if name == "imdb_id":
        return f"tt{int(rng.integers(1_000_000, 9_999_999)):07d}"
    return int(rng.integers(100_000, 500_000_000))


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class _RatingCandidates:
    """Sessions sampled as rating opportunities (user and title indices, end, completion)."""

    user: np.ndarray
    title: np.ndarray
    ended_ts: np.ndarray
    completed: np.ndarray


@dataclass(frozen=True)
class _SessionTables:
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


def _session_tables() -> _SessionTables:
    """Turn the distribution constants into arrays indexed by category codes."""
    os_names = tuple(dict.fromkeys(name for mix in OS_BY_DEVICE.values() for name in mix))
    os_matrix = np.asarray([[OS_BY_DEVICE[device].get(name, 0.0) for name in os_names] for device in DEVICES])
    return _SessionTables(
        device_by_country=_cumulative_rows(np.asarray([DEVICE_MIX_BY_COUNTRY[code] for code in COUNTRIES])),
        os_by_device=_cumulative_rows(os_matrix),
        os_names=os_names,
        quality_by_device=_cumulative_rows(np.asarray([QUALITY_MIX_BY_DEVICE[device] for device in DEVICES])),
        plan_max_quality=np.asarray([QUALITIES.index(PLAN_MAX_QUALITY[p]) for p in PLANS]),
        bitrate_low=np.asarray([BITRATE_KBPS_RANGE[q][0] for q in QUALITIES]),
        bitrate_high=np.asarray([BITRATE_KBPS_RANGE[q][1] for q in QUALITIES]),
        buffering_per_hour=np.asarray([BUFFERING_PER_HOUR_BY_QUALITY[q] for q in QUALITIES]),
        handheld=np.asarray([device in HANDHELD_DEVICES for device in DEVICES]),
        app_release_day=np.asarray([day for _, day in APP_VERSIONS]),
        hour_weekday=_probabilities(HOUR_WEIGHTS_WEEKDAY),
        hour_weekend=_probabilities(HOUR_WEIGHTS_WEEKEND),
    )


def _day_weights(window: _Window) -> np.ndarray:
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


def _write_sessions(
    path: Path,
    rng: np.random.Generator,
    spec: ScaleSpec,
    window: _Window,
    users: _Users,
    catalogue: _Catalogue,
    rate: float,
    log: DefectLog,
    report: Progress,
) -> tuple[int, _RatingCandidates]:
    """Generate and write viewing_sessions.csv chunk by chunk; return rows and rating seeds."""
    tables = _session_tables()
    day_counts = rng.multinomial(spec.sessions, _day_weights(window))
    totals = planned_counts(rate, spec.sessions, DEFECT_KINDS_BY_TABLE[VIEWING_SESSIONS])
    candidate_share = min(1.0, RATING_CANDIDATE_OVERSAMPLE * spec.ratings / spec.sessions)
    candidates: list[_RatingCandidates] = []
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
    merged = _RatingCandidates(
        user=np.concatenate([c.user for c in candidates]),
        title=np.concatenate([c.title for c in candidates]),
        ended_ts=np.concatenate([c.ended_ts for c in candidates]),
        completed=np.concatenate([c.completed for c in candidates]),
    )
    return written, merged


def _session_chunk(
    rng: np.random.Generator,
    window: _Window,
    users: _Users,
    catalogue: _Catalogue,
    tables: _SessionTables,
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
    user = _draw_prefix(rng, users.activity_cumulative, signed_up)
    lapsed = started >= users.inactive_from[user]
    stand_in = np.searchsorted(
        users.steady_cumulative,
        rng.random(int(lapsed.sum())) * users.steady_cumulative[-1],
        side="right",
    )
    user[lapsed] = users.steady[np.minimum(stand_in, users.steady.size - 1)]

    released = np.searchsorted(catalogue.added_ts, started, side="right")
    title = _draw_prefix(rng, catalogue.popularity_cumulative, released)
    series = catalogue.is_series[title]
    position = np.floor(catalogue.episode_count[title] * rng.random(m) ** EPISODE_POSITION_SKEW).astype(np.int64)
    episode = np.where(series, catalogue.episode_offset[title] + position, 0)
    minutes = np.where(series, catalogue.episode_minutes[episode], catalogue.movie_minutes[title])
    duration = minutes * SECONDS_PER_MINUTE

    complete_share = np.where(series, COMPLETE_WATCH_SHARE[SERIES], COMPLETE_WATCH_SHARE[MOVIE])
    fraction = np.where(
        rng.random(m) < complete_share,
        rng.uniform(*COMPLETE_FRACTION_RANGE, m),
        rng.beta(*PARTIAL_BETA, m) * PARTIAL_MAX_FRACTION,
    )
    watch = np.clip(np.floor(fraction * duration).astype(np.int64), MIN_WATCH_SECONDS, duration)
    completed = watch >= COMPLETION_RATIO * duration
    pause = np.where(rng.random(m) < PAUSE_SHARE, np.floor(rng.exponential(PAUSE_MEAN_SECONDS, m)), 0).astype(np.int64)
    ended = started + watch + pause
    updated = ended + rng.integers(0, INGEST_DELAY_MAX_SECONDS + 1, m)

    country = users.country[user]
    device = np.where(
        rng.random(m) < HOME_DEVICE_SHARE,
        users.home_device[user],
        _sample_rows(rng, tables.device_by_country, country),
    )
    operating_system = _sample_rows(rng, tables.os_by_device, device)
    day_of_window = (started - window.start_ts) // SECONDS_PER_DAY
    latest = np.searchsorted(tables.app_release_day, day_of_window, side="right") - 1
    lag = rng.choice(len(APP_VERSION_LAG_WEIGHTS), size=m, p=APP_VERSION_LAG_WEIGHTS)
    app_version = np.clip(latest - lag, 0, len(APP_VERSIONS) - 1)
    quality = np.minimum(
        _sample_rows(rng, tables.quality_by_device, device),
        tables.plan_max_quality[users.plan[user]],
    )
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


def _candidates(rng: np.random.Generator, chunk: Mapping[str, np.ndarray], share: float) -> _RatingCandidates:
    """Sample clean sessions as the watching that ratings are drawn from."""
    chosen = rng.random(chunk["user"].size) < share
    return _RatingCandidates(
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
    catalogue: _Catalogue,
    tables: _SessionTables,
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
        _content_id(ORPHAN_CONTENT_NUMBER_BASE + int(k))
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
        "content_id": _replace(_take(catalogue.ids, columns["title"]), orphan_content_rows, orphan_content),
        "episode": _take(catalogue.episode_codes, columns["episode"], mask=~columns["series"]),
        "started_at": _replace(_iso_array(columns["started"]), bad_start_rows, bad_starts),
        "ended_at": _iso_array(columns["ended"]),
        "watch_seconds": pa.array(columns["watch"], type=pa.int64()),
        "device_type": _take(DEVICES, columns["device"]),
        "os": _take(tables.os_names, columns["os"]),
        "app_version": _take([v for v, _ in APP_VERSIONS], columns["app_version"]),
        "streaming_quality": _take(QUALITIES, columns["quality"]),
        "avg_bitrate_kbps": pa.array(columns["bitrate"], type=pa.int64()),
        "buffering_events": pa.array(columns["buffering"], type=pa.int64()),
        "completed": pa.array(columns["completed"], type=pa.bool_()),
        "country": _take(COUNTRIES, columns["country"]),
        "updated_at": _iso_array(columns["updated"]),
    }
    return pa.table(arrays, schema=VIEWING_SESSIONS_SCHEMA)


# --------------------------------------------------------------------------- ratings


def _write_ratings(
    path: Path,
    rng: np.random.Generator,
    spec: ScaleSpec,
    window: _Window,
    users: _Users,
    catalogue: _Catalogue,
    candidates: _RatingCandidates,
    rate: float,
    log: DefectLog,
) -> int:
    """Turn watched sessions into ratings, inject the ratings defects and write ratings.csv."""
    rated = candidates.ended_ts + np.floor(rng.exponential(RATING_DELAY_MEAN_SECONDS, candidates.ended_ts.size)).astype(
        np.int64
    )
    in_window = np.flatnonzero(rated < window.end_ts)
    pair = candidates.user[in_window] * catalogue.n + candidates.title[in_window]
    _, first = np.unique(pair, return_index=True)
    keep = in_window[np.sort(first)]  # each (user, title) once, first time it was watched
    if keep.size > spec.ratings:
        keep = np.sort(rng.choice(keep, size=spec.ratings, replace=False))
    keep = keep[np.argsort(rated[keep], kind="stable")]
    user, title, rated = candidates.user[keep], candidates.title[keep], rated[keep]
    n = keep.size

    score = (
        catalogue.quality[title]
        + users.rating_bias[user]
        + rng.normal(0.0, RATING_NOISE_SD, n)
        + np.where(candidates.completed[keep], COMPLETED_RATING_SHIFT, ABANDONED_RATING_SHIFT)
    )
    extreme = np.where(rng.random(n) < POLARISED_HIGH_SHARE, RATING_MAX, RATING_MIN)
    score = np.where(catalogue.polarised[title], extreme + rng.normal(0.0, POLARISED_NOISE_SD, n), score)
    rating = np.clip(np.rint(score), RATING_MIN, RATING_MAX).astype(np.int64)
    updated = rated.copy()
    edited = np.flatnonzero(rng.random(n) < RATING_EDIT_SHARE)
    updated[edited] = _between(rng, rated[edited], np.full(edited.size, window.end_ts))
    rating[edited] = np.clip(rating[edited] + rng.choice(RATING_EDIT_STEPS, edited.size), RATING_MIN, RATING_MAX)

    user_id = user + 1
    content = _take(catalogue.ids, title)
    counts = planned_counts(rate, n, DEFECT_KINDS_BY_TABLE[RATINGS])
    available = np.ones(n, dtype=bool)
    null_rows = pick_rows(rng, available, counts[NULL_KEY])
    duplicate_rows = pick_rows(rng, available, counts[DUPLICATE_KEY])
    orphan_user_rows = pick_rows(rng, available, counts[ORPHAN_USER_ID])
    user_id[orphan_user_rows] = ORPHAN_USER_ID_BASE + rng.choice(
        ORPHAN_ID_SPAN, size=orphan_user_rows.size, replace=False
    )
    orphan_content_rows = pick_rows(rng, available, counts[ORPHAN_CONTENT_ID])
    orphan_numbers = rng.choice(ORPHAN_ID_SPAN, size=orphan_content_rows.size, replace=False)
    content = _replace(
        content,
        orphan_content_rows,
        [_content_id(ORPHAN_CONTENT_NUMBER_BASE + int(k)) for k in orphan_numbers],
    )
    out_of_range_rows = pick_rows(rng, available, counts[RATING_OUT_OF_RANGE])
    rating[out_of_range_rows] = rng.choice(OUT_OF_RANGE_RATINGS, size=out_of_range_rows.size)

    # Re-ratings: an extra row per duplicate with another rating and a later timestamp.
    rerated = _between(
        rng,
        updated[duplicate_rows] + 1,
        np.maximum(np.full(duplicate_rows.size, window.end_ts), updated[duplicate_rows] + 2),
    )
    new_rating = (rating[duplicate_rows] - RATING_MIN + rng.integers(1, RATING_MAX, duplicate_rows.size)) % (
        RATING_MAX - RATING_MIN + 1
    ) + RATING_MIN
    order = np.concatenate([np.arange(n), duplicate_rows])
    rating_all = np.concatenate([rating, new_rating])
    rated_all = np.concatenate([rated, rerated])
    updated_all = np.concatenate([updated, rerated])
    content_null = np.zeros(order.size, dtype=bool)
    content_null[null_rows] = True
    content_all = pc.if_else(pa.array(content_null), pa.scalar(None, pa.string()), pc.take(content, pa.array(order)))
    table = pa.table(
        {
            "user_id": pa.array(user_id[order], type=pa.int64()),
            "content_id": content_all,
            "rating": pa.array(rating_all, type=pa.int64()),
            "rated_at": _iso_array(rated_all),
            "updated_at": _iso_array(updated_all),
        },
        schema=RATINGS_SCHEMA,
    )
    _write_csv(path, table, RATINGS_SCHEMA)

    content_text = content.to_pylist()

    def keys(rows: np.ndarray, null_content: bool = False) -> list[list[Any]]:
        return [[int(user_id[r]), None if null_content else content_text[r]] for r in rows.tolist()]

    log.record(RATINGS, NULL_KEY, null_rows.size, keys(null_rows, null_content=True))
    log.record(RATINGS, DUPLICATE_KEY, duplicate_rows.size, keys(duplicate_rows))
    log.record(RATINGS, ORPHAN_USER_ID, orphan_user_rows.size, keys(orphan_user_rows))
    log.record(RATINGS, ORPHAN_CONTENT_ID, orphan_content_rows.size, keys(orphan_content_rows))
    log.record(RATINGS, RATING_OUT_OF_RANGE, out_of_range_rows.size, keys(out_of_range_rows))
    return int(order.size)


# --------------------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    """Versions of the libraries whose output the files depend on."""
    return {name: metadata.version(name) for name in ("numpy", "pyarrow", "faker")}


def _manifest(
    scale: str,
    seed: int,
    rate: float,
    spec: ScaleSpec,
    window: _Window,
    partial: Mapping[str, Path],
    rows: Mapping[str, int],
    log: DefectLog,
) -> dict[str, Any]:
    """Assemble the manifest.json document."""
    return {
        "scale": scale,
        "seed": int(seed),
        "defect_rate": rate,
        "start": _iso(window.start_ts),
        "end": _iso(window.end_ts),
        "spec": asdict(spec),
        "files": {
            name: {
                "rows": int(rows[name]),
                "bytes": partial[name].stat().st_size,
                "sha256": _sha256(partial[name]),
            }
            for name in _DATA_FILES
        },
        "defects": log.to_manifest(),
        "defect_kinds_doc": dict(DEFECT_KINDS_DOC),
        "defect_treatment": dict(DEFECT_TREATMENT),
        "versions": _versions(),
    }


__all__ = ["DEFAULT_START", "SCALES", "ScaleSpec", "generate"]
