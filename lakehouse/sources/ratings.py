"""Ratings: which sessions lead to a rating, the stars given, edits, and ratings.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expectations.domain import MAX_RATING, MIN_RATING
from lakehouse.sources.catalogue import Catalogue, content_id_for
from lakehouse.sources.common import SECONDS_PER_HOUR, ScaleSpec, Window, between, iso_array, replace_rows, take
from lakehouse.sources.csv_files import RATINGS_SCHEMA, write_csv
from lakehouse.sources.defects import (
    DEFECT_KINDS_BY_TABLE,
    DUPLICATE_KEY,
    NULL_KEY,
    ORPHAN_CONTENT_ID,
    ORPHAN_USER_ID,
    RATING_OUT_OF_RANGE,
    RATINGS,
    DefectLog,
    pick_rows,
    planned_counts,
)
from lakehouse.sources.sessions import ORPHAN_CONTENT_NUMBER_BASE, ORPHAN_ID_SPAN, ORPHAN_USER_ID_BASE, RatingCandidates
from lakehouse.sources.users import Users

RATING_DELAY_MEAN_SECONDS = 3 * SECONDS_PER_HOUR
RATING_NOISE_SD = 0.7
COMPLETED_RATING_SHIFT = 0.3
ABANDONED_RATING_SHIFT = -0.6
POLARISED_HIGH_SHARE = 0.55
POLARISED_NOISE_SD = 0.5
RATING_EDIT_SHARE = 0.05
RATING_EDIT_STEPS = (-1, 1)
OUT_OF_RANGE_RATINGS = (0, 6)


def write_ratings(
    path: Path,
    rng: np.random.Generator,
    spec: ScaleSpec,
    window: Window,
    users: Users,
    catalogue: Catalogue,
    candidates: RatingCandidates,
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
    extreme = np.where(rng.random(n) < POLARISED_HIGH_SHARE, MAX_RATING, MIN_RATING)
    score = np.where(catalogue.polarised[title], extreme + rng.normal(0.0, POLARISED_NOISE_SD, n), score)
    rating = np.clip(np.rint(score), MIN_RATING, MAX_RATING).astype(np.int64)
    updated = rated.copy()
    edited = np.flatnonzero(rng.random(n) < RATING_EDIT_SHARE)
    updated[edited] = between(rng, rated[edited], np.full(edited.size, window.end_ts))
    rating[edited] = np.clip(rating[edited] + rng.choice(RATING_EDIT_STEPS, edited.size), MIN_RATING, MAX_RATING)

    user_id = user + 1
    content = take(catalogue.ids, title)
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
    content = replace_rows(
        content,
        orphan_content_rows,
        [content_id_for(ORPHAN_CONTENT_NUMBER_BASE + int(k)) for k in orphan_numbers],
    )
    out_of_range_rows = pick_rows(rng, available, counts[RATING_OUT_OF_RANGE])
    rating[out_of_range_rows] = rng.choice(OUT_OF_RANGE_RATINGS, size=out_of_range_rows.size)

    # Re-ratings: an extra row per duplicate with another rating and a later timestamp.
    rerated = between(
        rng,
        updated[duplicate_rows] + 1,
        np.maximum(np.full(duplicate_rows.size, window.end_ts), updated[duplicate_rows] + 2),
    )
    new_rating = (rating[duplicate_rows] - MIN_RATING + rng.integers(1, MAX_RATING, duplicate_rows.size)) % (
        MAX_RATING - MIN_RATING + 1
    ) + MIN_RATING
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
            "rated_at": iso_array(rated_all),
            "updated_at": iso_array(updated_all),
        },
        schema=RATINGS_SCHEMA,
    )
    write_csv(path, table, RATINGS_SCHEMA)

    content_text = content.to_pylist()

    def keys(rows: np.ndarray, null_content: bool = False) -> list[list[Any]]:
        return [[int(user_id[r]), None if null_content else content_text[r]] for r in rows.tolist()]

    log.record(RATINGS, NULL_KEY, null_rows.size, keys(null_rows, null_content=True))
    log.record(RATINGS, DUPLICATE_KEY, duplicate_rows.size, keys(duplicate_rows))
    log.record(RATINGS, ORPHAN_USER_ID, orphan_user_rows.size, keys(orphan_user_rows))
    log.record(RATINGS, ORPHAN_CONTENT_ID, orphan_content_rows.size, keys(orphan_content_rows))
    log.record(RATINGS, RATING_OUT_OF_RANGE, out_of_range_rows.size, keys(out_of_range_rows))
    return int(order.size)
