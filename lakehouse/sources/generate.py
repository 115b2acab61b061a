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
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse.sources.catalogue import build_catalogue, write_content
from lakehouse.sources.common import Progress, ScaleSpec, Window, iso
from lakehouse.sources.defects import (
    DEFECT_KINDS_DOC,
    DEFECT_TREATMENT,
    DefectLog,
)
from lakehouse.sources.people import build_pools
from lakehouse.sources.ratings import write_ratings
from lakehouse.sources.schema import (
    CONTENT_FILE,
    MANIFEST_FILE,
    RATINGS_FILE,
    USERS_FILE,
    VIEWING_SESSIONS_FILE,
)
from lakehouse.sources.sessions import write_sessions
from lakehouse.sources.users import build_users, write_users

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
FULL_KEY_LIST_MAX_ROWS = 1_000_000
KEY_LIST_CAP = 1_000
HASH_BLOCK_BYTES = 1 << 20


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
    window = Window(start_ts=int(window_start.timestamp()), days=spec.days)
    rng = np.random.default_rng(seed)
    log = DefectLog(key_cap=_key_cap(spec))
    rows: dict[str, int] = {}

    report(f"generate: scale={scale} seed={seed} defect_rate={rate} start={iso(window.start_ts)}")
    pools = build_pools(seed)
    users = build_users(rng, spec, window, pools)
    rows[USERS_FILE] = write_users(partial[USERS_FILE], rng, users, pools, window, rate, log)
    report(f"{USERS_FILE}: {rows[USERS_FILE]:,} rows")

    catalogue = build_catalogue(rng, spec, window, pools)
    rows[CONTENT_FILE] = write_content(partial[CONTENT_FILE], rng, catalogue, rate, log)
    report(f"{CONTENT_FILE}: {rows[CONTENT_FILE]:,} documents")

    rows[VIEWING_SESSIONS_FILE], candidates = write_sessions(
        partial[VIEWING_SESSIONS_FILE], rng, spec, window, users, catalogue, rate, log, report
    )
    rows[RATINGS_FILE] = write_ratings(
        partial[RATINGS_FILE], rng, spec, window, users, catalogue, candidates, rate, log
    )
    report(f"{RATINGS_FILE}: {rows[RATINGS_FILE]:,} rows")

    manifest = _manifest(scale, seed, rate, spec, window, partial, rows, log)
    partial[MANIFEST_FILE].write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


_DATA_FILES = (USERS_FILE, CONTENT_FILE, VIEWING_SESSIONS_FILE, RATINGS_FILE)


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
    window: Window,
    partial: Mapping[str, Path],
    rows: Mapping[str, int],
    log: DefectLog,
) -> dict[str, Any]:
    """Assemble the manifest.json document."""
    return {
        "scale": scale,
        "seed": int(seed),
        "defect_rate": rate,
        "start": iso(window.start_ts),
        "end": iso(window.end_ts),
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
