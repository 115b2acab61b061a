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

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psycopg2
from psycopg2 import sql
from pymongo.database import Database
from pymongo.errors import PyMongoError

from lakehouse import errors
from lakehouse.config import Config
from lakehouse.services import postgres
from lakehouse.services.process import ServiceError
from lakehouse.sources.common import (
    SECONDS_PER_DAY,
    iso,
)
from lakehouse.sources.load import (
    SIM_CLOCK_TABLE,
    mongo_database,
    sources_lock,
)
from lakehouse.sources.people import build_pools
from lakehouse.sources.schema import CONTENT_COLLECTION
from lakehouse.sources.simulate_changes import apply_user_changes, plan_corrections, plan_new_titles, plan_user_changes
from lakehouse.sources.simulate_ratings import edit_ratings, insert_ratings
from lakehouse.sources.simulate_sessions import update_sessions, write_new_sessions
from lakehouse.sources.simulate_state import SimWindow, SourceState, read_state, source_table, utc_datetime

Progress = Callable[[str], None]

MAX_DAYS = 366


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
            state = read_state(conn, database)
            window = SimWindow(start=state.clock, end=state.clock + days * SECONDS_PER_DAY)
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


def _run(
    conn: Any,
    database: Database,
    rng: np.random.Generator,
    state: SourceState,
    window: SimWindow,
    seed: int,
    progress: Progress,
) -> dict[str, int]:
    """Plan and write every change; PostgreSQL is left uncommitted for the caller."""
    pools = build_pools(seed)
    user_changes = plan_user_changes(rng, state.users, window)
    new_documents, titles = plan_new_titles(rng, state, window, pools)
    corrections = plan_corrections(rng, state, window, pools)

    with conn.cursor() as cur:
        apply_user_changes(cur, state.users, user_changes)
        progress(
            f"users: {user_changes.count('plan'):,} plan changes, {user_changes.count('paused'):,} paused, "
            f"{user_changes.count('resumed'):,} resumed, {user_changes.count('churned'):,} churned"
        )
        sessions = write_new_sessions(cur, rng, state, titles, user_changes, window)
        progress(
            f"viewing_sessions: {sessions.rows:,} new (session_id {state.max_session_id + 1:,}.."
            f"{state.max_session_id + sessions.rows:,}, {sessions.in_progress:,} still in progress)"
        )
        updated_sessions = update_sessions(cur, rng, state, titles, window, sessions.rows)
        progress(f"viewing_sessions: {updated_sessions:,} earlier sessions updated after the fact")
        new_ratings = insert_ratings(cur, rng, state, titles, sessions, window)
        updated_ratings = edit_ratings(cur, rng, state, window)
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
            ).format(source_table(SIM_CLOCK_TABLE)),
            (utc_datetime(window.start), utc_datetime(window.end), counts["days"], seed, json.dumps(counts)),
        )

    content = database[CONTENT_COLLECTION]
    if new_documents:
        content.insert_many(new_documents, ordered=False)
    if corrections:
        content.bulk_write(corrections, ordered=True)
    progress(f"content: {len(new_documents):,} new titles, {len(corrections):,} corrected")
    return counts


__all__ = ["MAX_DAYS", "simulate"]
