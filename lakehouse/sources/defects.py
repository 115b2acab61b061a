"""Defect kinds injected into the synthetic sources, and their bookkeeping.

The kinds, what each looks like and how the pipeline is expected to treat it are documented
at the top of :mod:`lakehouse.sources.generate`; this module holds the machine-readable form
(:data:`DEFECT_KINDS_DOC`, :data:`DEFECT_TREATMENT`, :data:`DEFECT_KINDS_BY_TABLE`), the
arithmetic that turns a ``defect_rate`` into counts per kind, the row picker and
:class:`DefectLog`, which collects counts and affected keys for ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

USERS = "users"
CONTENT = "content"
VIEWING_SESSIONS = "viewing_sessions"
RATINGS = "ratings"

# How the pipeline is expected to treat a defect.
QUARANTINE = "quarantine"  # bronze cannot type the row: it goes to bronze.quarantine
MERGE = "merge"  # bronze MERGE on the key resolves it: newest updated_at wins
GATE = "gate"  # typed fine, lands in bronze; the quality gate flags it, silver filters it
RESCUED = "rescued"  # unknown field kept in bronze's _rescued_data column
NULLABLE = "nullable"  # optional field absent: a null in bronze, nothing to do

NULL_KEY = "null_key"
DUPLICATE_KEY = "duplicate_key"
ORPHAN_USER_ID = "orphan_user_id"
ORPHAN_CONTENT_ID = "orphan_content_id"
MALFORMED_BIRTH_DATE = "malformed_birth_date"
UNKNOWN_PLAN = "unknown_plan"
NEGATIVE_WATCH_SECONDS = "negative_watch_seconds"
ABSURD_WATCH_SECONDS = "absurd_watch_seconds"
ENDED_BEFORE_STARTED = "ended_before_started"
UNPARSEABLE_STARTED_AT = "unparseable_started_at"
RATING_OUT_OF_RANGE = "rating_out_of_range"
MISSING_TITLE = "missing_title"
RELEASE_YEAR_AS_STRING = "release_year_as_string"
DURATION_MINUTES_AS_STRING = "duration_minutes_as_string"
UNKNOWN_EXTRA_FIELD = "unknown_extra_field"
MALFORMED_UPDATED_AT = "malformed_updated_at"
MISSING_OPTIONAL_FIELD = "missing_optional_field"

DEFECT_KINDS_BY_TABLE: dict[str, tuple[str, ...]] = {
    USERS: (NULL_KEY, DUPLICATE_KEY, MALFORMED_BIRTH_DATE, UNKNOWN_PLAN),
    CONTENT: (
        MISSING_TITLE,
        RELEASE_YEAR_AS_STRING,
        DURATION_MINUTES_AS_STRING,
        UNKNOWN_EXTRA_FIELD,
        MALFORMED_UPDATED_AT,
        MISSING_OPTIONAL_FIELD,
    ),
    VIEWING_SESSIONS: (
        NULL_KEY,
        DUPLICATE_KEY,
        ORPHAN_USER_ID,
        ORPHAN_CONTENT_ID,
        NEGATIVE_WATCH_SECONDS,
        ABSURD_WATCH_SECONDS,
        ENDED_BEFORE_STARTED,
        UNPARSEABLE_STARTED_AT,
    ),
    RATINGS: (NULL_KEY, DUPLICATE_KEY, ORPHAN_USER_ID, ORPHAN_CONTENT_ID, RATING_OUT_OF_RANGE),
}

DEFECT_KINDS_DOC: dict[str, str] = {
    NULL_KEY: "primary key (users.user_id, viewing_sessions.session_id, ratings.content_id) is empty; quarantine",
    DUPLICATE_KEY: "a second row with the same key and a later updated_at (a plan change, the "
    "final version of a session, a re-rating); MERGE keeps the newest",
    ORPHAN_USER_ID: "user_id references no user in users.csv; passes bronze, flagged by the gate",
    ORPHAN_CONTENT_ID: "content_id (c9xxxxx) references no document in content.jsonl; passes "
    "bronze, flagged by the gate",
    MALFORMED_BIRTH_DATE: "birth_date is not a YYYY-MM-DD calendar date; quarantine",
    UNKNOWN_PLAN: "subscription_plan outside basic/standard/premium; passes bronze, flagged by "
    "the gate (accepted values)",
    NEGATIVE_WATCH_SECONDS: "watch_seconds < 0; passes bronze, flagged by the gate",
    ABSURD_WATCH_SECONDS: "watch_seconds > 86400 (more than a day); passes bronze, flagged by the gate",
    ENDED_BEFORE_STARTED: "ended_at earlier than started_at; passes bronze, flagged by the gate",
    UNPARSEABLE_STARTED_AT: "started_at is not an ISO-8601 timestamp; quarantine",
    RATING_OUT_OF_RANGE: "rating is 0 or 6 (valid: 1-5); passes bronze, flagged by the gate",
    MISSING_TITLE: "document has no title field; bronze keeps a null, flagged by the gate",
    RELEASE_YEAR_AS_STRING: "release_year is a string such as 'nineteen-ninety'; quarantine",
    DURATION_MINUTES_AS_STRING: "duration_minutes of a movie is a string such as '95 min'; quarantine",
    UNKNOWN_EXTRA_FIELD: "document carries a field the contract does not know (schema drift, "
    "e.g. trailer_url); kept in _rescued_data",
    MALFORMED_UPDATED_AT: "updated_at is not an ISO-8601 timestamp; quarantine",
    MISSING_OPTIONAL_FIELD: "document lacks an optional field (director, cast or maturity_rating); bronze keeps a null",
}

DEFECT_TREATMENT: dict[str, str] = {
    NULL_KEY: QUARANTINE,
    DUPLICATE_KEY: MERGE,
    ORPHAN_USER_ID: GATE,
    ORPHAN_CONTENT_ID: GATE,
    MALFORMED_BIRTH_DATE: QUARANTINE,
    UNKNOWN_PLAN: GATE,
    NEGATIVE_WATCH_SECONDS: GATE,
    ABSURD_WATCH_SECONDS: GATE,
    ENDED_BEFORE_STARTED: GATE,
    UNPARSEABLE_STARTED_AT: QUARANTINE,
    RATING_OUT_OF_RANGE: GATE,
    MISSING_TITLE: GATE,
    RELEASE_YEAR_AS_STRING: QUARANTINE,
    DURATION_MINUTES_AS_STRING: QUARANTINE,
    UNKNOWN_EXTRA_FIELD: RESCUED,
    MALFORMED_UPDATED_AT: QUARANTINE,
    MISSING_OPTIONAL_FIELD: NULLABLE,
}

Key = int | str | list[Any] | None


def planned_counts(defect_rate: float, rows: int, kinds: Iterable[str]) -> dict[str, int]:
    """Rows to affect per kind so that about ``defect_rate`` of ``rows`` carry a defect.

    The rate is shared between the kinds of a table; every kind gets at least one row when the
    rate is positive, so that each kind is exercised even at tiny scale.
    """
    kinds = tuple(kinds)
    if defect_rate <= 0 or rows <= 0:
        return dict.fromkeys(kinds, 0)
    per_kind = max(1, round(defect_rate * rows / len(kinds)))
    return dict.fromkeys(kinds, per_kind)


def share_for_chunk(total: int, rows_before: int, rows_after: int, rows_all: int) -> int:
    """Part of ``total`` that falls into the chunk covering rows [rows_before, rows_after).

    Summed over consecutive chunks this gives exactly ``total``.
    """
    if rows_all <= 0:
        return 0
    return total * rows_after // rows_all - total * rows_before // rows_all


def pick_rows(
    rng: np.random.Generator,
    available: np.ndarray,
    count: int,
    *,
    eligible: np.ndarray | None = None,
    preferred: np.ndarray | None = None,
) -> np.ndarray:
    """Pick up to ``count`` distinct rows that are available (and eligible), preferred first.

    ``available`` (bool) is updated in place so that later kinds pick disjoint rows. The
    result is sorted; it is shorter than ``count`` only when too few rows qualify.
    """
    allowed = available if eligible is None else available & eligible
    pools = [allowed & preferred, allowed] if preferred is not None else [allowed]
    chosen: list[np.ndarray] = []
    remaining = count
    for pool in pools:
        if remaining <= 0:
            break
        candidates = np.flatnonzero(pool & available)
        take = min(remaining, candidates.size)
        if take:
            picked = rng.choice(candidates, size=take, replace=False)
            available[picked] = False
            chosen.append(picked)
            remaining -= take
    if not chosen:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _plain(key: Any) -> Key:
    """Turn numpy scalars (and lists of them) into JSON-serialisable Python values."""
    if isinstance(key, (list, tuple)):
        return [_plain(part) for part in key]
    if isinstance(key, np.generic):
        return key.item()
    return key


class DefectLog:
    """Counts and affected keys of the injected defects, per table and kind."""

    def __init__(self, key_cap: int | None) -> None:
        """Start an empty log; ``key_cap`` bounds stored keys per kind (None: keep all)."""
        self._key_cap = key_cap
        self._entries: dict[str, dict[str, dict[str, Any]]] = {
            table: {kind: {"count": 0, "keys": []} for kind in kinds} for table, kinds in DEFECT_KINDS_BY_TABLE.items()
        }

    def record(self, table: str, kind: str, count: int, keys: Iterable[Any] = ()) -> None:
        """Add ``count`` affected rows of ``kind`` in ``table`` and (some of) their keys."""
        entry = self._entries[table][kind]
        entry["count"] += int(count)
        stored: list[Key] = entry["keys"]
        for key in keys:
            if self._key_cap is not None and len(stored) >= self._key_cap:
                entry["keys_truncated"] = True
                break
            stored.append(_plain(key))

    def count(self, table: str, kind: str) -> int:
        """Rows of ``kind`` recorded so far for ``table``."""
        return int(self._entries[table][kind]["count"])

    def to_manifest(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Return the ``defects`` section of manifest.json."""
        return {table: {kind: dict(entry) for kind, entry in kinds.items()} for table, kinds in self._entries.items()}
