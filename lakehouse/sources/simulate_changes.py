"""A simulated day's changes to users and titles: plan changes, churn, pauses and resumptions,
new titles and metadata corrections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from psycopg2.extras import execute_values
from pymongo import UpdateOne

from expectations.domain import BILLING_CYCLES, SUBSCRIPTION_PLANS, SUBSCRIPTION_STATUSES
from lakehouse.sources.catalogue import (
    FAMILY_GENRES,
    GENRES,
    MAX_GENRES,
    METADATA_CORRECTION_SHARE,
    MOVIE_MINUTES_MEAN,
    MOVIE_MINUTES_RANGE,
    MOVIE_MINUTES_SD,
    NEW_TITLE_MAX_LAG_YEARS,
    NEW_TITLE_SHARE,
    SERIES_SHARE,
    build_documents,
    build_episodes,
    content_id_for,
    draw_titles,
)
from lakehouse.sources.common import (
    year_of,
)
from lakehouse.sources.load import (
    to_mongo_document,
)
from lakehouse.sources.people import Pools
from lakehouse.sources.simulate_state import (
    GENERATOR_WINDOW_DAYS,
    SimWindow,
    SourceState,
    SourceUsers,
    Titles,
    titles_from_documents,
    utc_datetime,
)
from lakehouse.sources.users import MONTHLY_PRICE_USD

NEVER = np.iinfo(np.int64).max


NEW_TITLE_POPULARITY_BOOST = 2.0  # new arrivals get attention


# Daily probabilities per user (turned into per-run ones for `days`): a few % of users change.
PLAN_CHANGE_DAILY = 0.015
CHURN_DAILY = 0.004
PAUSE_DAILY = 0.003
RESUME_DAILY = 0.05  # of paused users
BILLING_SWITCH_SHARE = 0.15  # plan changes that also switch the billing cycle


CORRECTION_KINDS = ("title", "genres", "director")


@dataclass(frozen=True)
class UserChanges:
    """One change per affected user (index into the clean users), at ``at`` seconds."""

    index: np.ndarray
    kind: list[str]  # plan, paused, resumed, churned
    at: np.ndarray
    plan: np.ndarray
    billing: np.ndarray
    status: np.ndarray

    def count(self, kind: str) -> int:
        """Changes of one kind."""
        return self.kind.count(kind)

    def inactive_from(self, n: int) -> np.ndarray:
        """Per clean user: the instant from which they no longer watch (NEVER if they do)."""
        result = np.full(n, NEVER, dtype=np.int64)
        stops = np.asarray([k in ("paused", "churned") for k in self.kind], dtype=bool)
        result[self.index[stops]] = self.at[stops]
        return result

    def plan_after(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per clean user: the new plan (or -1) and the instant it applies from."""
        plan = np.full(n, -1, dtype=np.int64)
        since = np.full(n, NEVER, dtype=np.int64)
        changed = np.asarray([k == "plan" for k in self.kind], dtype=bool)
        plan[self.index[changed]] = self.plan[changed]
        since[self.index[changed]] = self.at[changed]
        return plan, since


def _per_run(daily: float, days: float) -> float:
    """The probability of at least one event in ``days`` days at a daily probability."""
    return 1.0 - (1.0 - daily) ** days


def plan_user_changes(rng: np.random.Generator, users: SourceUsers, window: SimWindow) -> UserChanges:
    """Draw plan changes, pauses and churn among active users and resumes among paused ones."""
    n = users.user_id.size
    active = users.status == SUBSCRIPTION_STATUSES.index("active")
    paused = users.status == SUBSCRIPTION_STATUSES.index("paused")
    draw = rng.random(n)
    p_plan = _per_run(PLAN_CHANGE_DAILY, window.days)
    p_churn = _per_run(CHURN_DAILY, window.days)
    p_pause = _per_run(PAUSE_DAILY, window.days)
    kind = np.full(n, "", dtype=object)
    kind[active & (draw < p_plan)] = "plan"
    kind[active & (draw >= p_plan) & (draw < p_plan + p_churn)] = "churned"
    kind[active & (draw >= p_plan + p_churn) & (draw < p_plan + p_churn + p_pause)] = "paused"
    kind[paused & (draw < _per_run(RESUME_DAILY, window.days))] = "resumed"
    index = np.flatnonzero(kind != "")
    at = window.instants(rng, index.size)
    plan = users.plan[index].copy()
    billing = users.billing[index].copy()
    status = users.status[index].copy()
    kinds = [str(k) for k in kind[index].tolist()]
    is_plan = np.asarray([k == "plan" for k in kinds], dtype=bool)
    plan[is_plan] = (plan[is_plan] + rng.integers(1, len(SUBSCRIPTION_PLANS), int(is_plan.sum()))) % len(
        SUBSCRIPTION_PLANS
    )
    switch = is_plan & (rng.random(index.size) < BILLING_SWITCH_SHARE)
    billing[switch] = 1 - billing[switch]
    for name, code in (("churned", "churned"), ("paused", "paused"), ("resumed", "active")):
        status[np.asarray([k == name for k in kinds], dtype=bool)] = SUBSCRIPTION_STATUSES.index(code)
    return UserChanges(index=index, kind=kinds, at=at, plan=plan, billing=billing, status=status)


def apply_user_changes(cur: Any, users: SourceUsers, changes: UserChanges) -> None:
    """UPDATE the changed users: plan, billing, price (consistent), status and updated_at."""
    if changes.index.size == 0:
        return
    rows = [
        (
            int(users.user_id[i]),
            SUBSCRIPTION_PLANS[p],
            BILLING_CYCLES[b],
            Decimal(MONTHLY_PRICE_USD[(SUBSCRIPTION_PLANS[p], BILLING_CYCLES[b])]),
            SUBSCRIPTION_STATUSES[s],
            utc_datetime(int(t)),
        )
        for i, p, b, s, t in zip(
            changes.index.tolist(),
            changes.plan.tolist(),
            changes.billing.tolist(),
            changes.status.tolist(),
            changes.at.tolist(),
            strict=True,
        )
    ]
    execute_values(
        cur,
        "update public.users as u set subscription_plan = v.plan, billing_cycle = v.billing, "
        "monthly_price = v.price, status = v.status, updated_at = v.updated_at "
        "from (values %s) as v (user_id, plan, billing, price, status, updated_at) where u.user_id = v.user_id",
        rows,
        template="(%s::bigint, %s, %s, %s::numeric, %s, %s::timestamptz)",
    )


def plan_new_titles(
    rng: np.random.Generator, state: SourceState, window: SimWindow, pools: Pools
) -> tuple[list[dict[str, Any]], Titles]:
    """New documents arriving during the window, and the title arrays including them."""
    daily = state.total_documents * NEW_TITLE_SHARE / GENERATOR_WINDOW_DAYS
    n = max(1, int(rng.poisson(daily * window.days)))
    added = np.sort(window.instants(rng, n))
    is_series = rng.random(n) < SERIES_SHARE
    movie_minutes = np.clip(np.rint(rng.normal(MOVIE_MINUTES_MEAN, MOVIE_MINUTES_SD, n)), *MOVIE_MINUTES_RANGE).astype(
        np.int64
    )
    release_year = year_of(added) - rng.integers(0, NEW_TITLE_MAX_LAG_YEARS + 1, n)
    documents = build_documents(
        rng,
        is_series=is_series,
        added=added,
        updated=added,
        release_year=release_year,
        movie_minutes=movie_minutes,
        episodes=build_episodes(rng, is_series),
        pools=pools,
    )
    for offset, document in enumerate(documents, start=1):
        document["_id"] = content_id_for(state.max_content_number + offset)
        to_mongo_document(document)
    existing = state.titles
    boost = rng.choice(existing.weight, size=n) * NEW_TITLE_POPULARITY_BOOST
    new = titles_from_documents(documents, weight=boost.tolist(), rating_mean=[state.global_rating] * n)
    return documents, _concat_titles(existing, new)


def _concat_titles(first: Titles, second: Titles) -> Titles:
    """Titles of ``first`` then ``second`` (both in added order, second later), episodes re-based."""
    codes_first = first.episode_codes if first.episode_count.sum() else []
    minutes_first = first.episode_minutes if first.episode_count.sum() else np.zeros(0, dtype=np.int64)
    codes_second = second.episode_codes if second.episode_count.sum() else []
    minutes_second = second.episode_minutes if second.episode_count.sum() else np.zeros(0, dtype=np.int64)
    codes = list(codes_first) + list(codes_second)
    return Titles(
        ids=first.ids + second.ids,
        added_ts=np.concatenate([first.added_ts, second.added_ts]),
        is_series=np.concatenate([first.is_series, second.is_series]),
        weight=np.concatenate([first.weight, second.weight]),
        movie_minutes=np.concatenate([first.movie_minutes, second.movie_minutes]),
        episode_offset=np.concatenate([first.episode_offset, second.episode_offset + len(codes_first)]),
        episode_count=np.concatenate([first.episode_count, second.episode_count]),
        episode_codes=codes or [""],
        episode_minutes=np.concatenate([minutes_first, minutes_second]) if codes else np.zeros(1, dtype=np.int64),
        rating_mean=np.concatenate([first.rating_mean, second.rating_mean]),
        country=np.concatenate([first.country, second.country]),
        genres=first.genres + second.genres,
    )


def plan_corrections(rng: np.random.Generator, state: SourceState, window: SimWindow, pools: Pools) -> list[UpdateOne]:
    """Metadata corrections on existing clean titles: a fixed title, genres or director."""
    titles = state.titles
    daily = titles.n * METADATA_CORRECTION_SHARE / GENERATOR_WINDOW_DAYS
    n = min(titles.n, max(1, int(rng.poisson(daily * window.days))))
    chosen = np.sort(rng.choice(titles.n, size=n, replace=False))
    at = window.instants(rng, n)
    kinds = rng.integers(0, len(CORRECTION_KINDS), n)
    new_titles = draw_titles(rng, titles.country[chosen], pools)
    plain_genres = [g for g in GENRES if g not in FAMILY_GENRES]
    operations = []
    for position, (index, kind) in enumerate(zip(chosen.tolist(), kinds.tolist(), strict=True)):
        when = datetime.fromtimestamp(int(at[position]), UTC)
        name = CORRECTION_KINDS[kind]
        if name == "title":
            change: dict[str, Any] = {"title": new_titles[position]}
        elif name == "genres":
            genres = list(titles.genres[index])
            missing = [g for g in plain_genres if g not in genres]
            pick = missing[int(rng.integers(0, len(missing)))]
            genres = [*genres, pick] if len(genres) < MAX_GENRES else [*genres[:-1], pick]
            change = {"genres": genres}
        else:
            change = {"director": pools.people[int(rng.integers(0, len(pools.people)))]}
        operations.append(UpdateOne({"_id": titles.ids[index]}, {"$set": {**change, "updated_at": when}}))
    return operations
