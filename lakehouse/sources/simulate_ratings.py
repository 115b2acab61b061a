"""A simulated day's ratings: new ones drawn from the day's sessions, and edits of earlier ones."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg2 import sql
from psycopg2.extras import execute_values

from expectations.domain import MAX_RATING, MIN_RATING
from lakehouse.sources.common import (
    SECONDS_PER_DAY,
    iso_array,
    take,
)
from lakehouse.sources.csv_files import CSV_WRITE_OPTIONS
from lakehouse.sources.ratings import (
    ABANDONED_RATING_SHIFT,
    COMPLETED_RATING_SHIFT,
    RATING_DELAY_MEAN_SECONDS,
    RATING_EDIT_SHARE,
    RATING_NOISE_SD,
)
from lakehouse.sources.simulate_sessions import NewSessions
from lakehouse.sources.simulate_state import ACTIVITY_LOOKBACK_DAYS, SimWindow, SourceState, Titles, utc_datetime

RATING_USER_BIAS_WEIGHT = 0.6


def insert_ratings(
    cur: Any, rng: np.random.Generator, state: SourceState, titles: Titles, sessions: NewSessions, window: SimWindow
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
    rating = np.clip(np.rint(score), MIN_RATING, MAX_RATING).astype(np.int64)
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


def edit_ratings(cur: Any, rng: np.random.Generator, state: SourceState, window: SimWindow) -> int:
    """Change a few recent, clean ratings by one star; ``rated_at`` stays, ``updated_at`` moves."""
    since = utc_datetime(window.start - ACTIVITY_LOOKBACK_DAYS * SECONDS_PER_DAY)
    cur.execute(
        "select user_id, content_id, min(rating) from ratings where updated_at > %s and updated_at <= %s "
        "and user_id is not null and content_id is not null and rating between %s and %s "
        "and (user_id, content_id) not in (select user_id, content_id from ratings where user_id is not null "
        "and content_id is not null group by user_id, content_id having count(*) > 1) "
        "group by user_id, content_id order by user_id, content_id",
        (since, utc_datetime(window.start), MIN_RATING, MAX_RATING),
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
        if not MIN_RATING <= new <= MAX_RATING:
            new = rating - int(step[position])
        values.append((int(user_id), content_id, new, utc_datetime(int(at[position]))))
    execute_values(
        cur,
        "update public.ratings as r set rating = v.rating, updated_at = v.updated_at "
        "from (values %s) as v (user_id, content_id, rating, updated_at) "
        "where r.user_id = v.user_id and r.content_id = v.content_id",
        values,
        template="(%s::bigint, %s, %s::smallint, %s::timestamptz)",
    )
    return n
