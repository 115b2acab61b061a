"""What every part of the synthetic model shares: time units, the activity window, a scale's sizes,
and the NumPy/Arrow helpers that draw from distributions and build columns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class ScaleSpec:
    """Nominal sizes of one scale (defect extras come on top) and the window length in days."""

    users: int
    titles: int
    sessions: int
    ratings: int
    days: int


SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3_600
SECONDS_PER_DAY = 86_400
HOURS_PER_DAY = 24
DAYS_PER_WEEK = 7
DAYS_PER_YEAR = 365.25
WEEKEND_WEEKDAYS = (5, 6)  # Saturday, Sunday (Monday is 0)
NEVER = np.iinfo(np.int64).max
BAD_TIMESTAMPS = (
    "not-a-timestamp",
    "2026-02-30T25:61:00Z",
    "yesterday evening",
    "0000-00-00T00:00:00Z",
)


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Window:
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


def iso(ts: int) -> str:
    """One epoch second as ISO-8601 UTC with a Z suffix (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_array(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds as ISO-8601 UTC strings (``YYYY-MM-DDTHH:MM:SSZ``), vectorised."""
    text = pc.cast(pa.array(seconds, type=pa.timestamp("s")), pa.string())
    text = pc.utf8_replace_slice(text, start=10, stop=11, replacement="T")
    return pc.binary_join_element_wise(text, "Z", "")


def date_array(seconds: np.ndarray) -> pa.Array:
    """Epoch seconds as ``YYYY-MM-DD`` strings."""
    days = np.floor_divide(seconds, SECONDS_PER_DAY).astype(np.int32)
    return pc.cast(pa.array(days, type=pa.date32()), pa.string())


def take(pool: Sequence[Any] | pa.Array, indices: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Pick pool entries by index (null where ``mask`` is true), as an Arrow array."""
    values = pool if isinstance(pool, pa.Array) else pa.array(pool)
    return pc.take(values, pa.array(indices, type=pa.int64(), mask=mask))


def replace_rows(array: pa.Array, rows: np.ndarray, values: Sequence[Any]) -> pa.Array:
    """Replace ``array[rows]`` (sorted positions) by ``values``."""
    if rows.size == 0:
        return array
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(array, pa.array(mask), pa.array(list(values), type=array.type))


def shares_in_order(shares: Mapping[str, float], values: Sequence[str]) -> tuple[float, ...]:
    """A share per value, in the order of ``values`` (a domain's value set); one for every value."""
    if set(shares) != set(values):
        raise ValueError(f"shares for {sorted(shares)} do not match the value set {list(values)}")
    return tuple(shares[value] for value in values)


def probabilities(weights: Sequence[float]) -> np.ndarray:
    """Weights normalised to probabilities."""
    values = np.asarray(weights, dtype=np.float64)
    return values / values.sum()


def cumulative_rows(matrix: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative probabilities whose last column is exactly 1."""
    cumulative = np.cumsum(matrix / matrix.sum(axis=1, keepdims=True), axis=1)
    cumulative[:, -1] = 1.0
    return cumulative


def sample_rows(rng: np.random.Generator, cumulative: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Draw one category per row from the distribution of that row's group."""
    u = 1.0 - rng.random(group.size)  # (0, 1]: zero-probability categories are never drawn
    return (cumulative[group] < u[:, None]).sum(axis=1)


def draw_prefix(rng: np.random.Generator, cumulative: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Draw by weight among the first ``available[i]`` entities, for every row i."""
    totals = cumulative[available - 1]
    picked = np.searchsorted(cumulative, rng.random(available.size) * totals, side="right")
    return np.minimum(picked, available - 1)


def between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Uniform integer epoch seconds in [low, high) (``low`` where the range is empty)."""
    span = np.maximum(high - low, 0)
    return low + np.floor(rng.random(low.size) * span).astype(np.int64)


def year_of(seconds: np.ndarray) -> np.ndarray:
    """Calendar year of epoch seconds."""
    return seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def arrival_times(
    rng: np.random.Generator, n: int, share_in_window: float, history_days: int, window: Window
) -> np.ndarray:
    """When each of ``n`` users or titles arrived, sorted: ``share_in_window`` of them during the
    window (uniformly), the rest in the ``history_days`` before it, more of them recently."""
    in_window = rng.random(n) < share_in_window
    u = rng.random(n)
    history = history_days * SECONDS_PER_DAY
    before = window.start_ts - 1 - np.floor(history * (1 - np.sqrt(u))).astype(np.int64)
    during = window.start_ts + np.floor(u * window.seconds).astype(np.int64)
    return np.sort(np.where(in_window, during, before))
