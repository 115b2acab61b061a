"""Users: sign-ups, plans, churn and pauses over the window, and users.csv."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expectations.domain import BILLING_CYCLES, GENDERS, SUBSCRIPTION_PLANS, SUBSCRIPTION_STATUSES
from lakehouse.sources.common import (
    DAYS_PER_YEAR,
    NEVER,
    SECONDS_PER_DAY,
    ScaleSpec,
    Window,
    arrival_times,
    between,
    cumulative_rows,
    date_array,
    iso_array,
    probabilities,
    replace_rows,
    sample_rows,
    shares_in_order,
    take,
)
from lakehouse.sources.csv_files import PRICE_TYPE, USERS_SCHEMA, write_csv
from lakehouse.sources.defects import (
    DEFECT_KINDS_BY_TABLE,
    DUPLICATE_KEY,
    MALFORMED_BIRTH_DATE,
    NULL_KEY,
    UNKNOWN_PLAN,
    USERS,
    DefectLog,
    pick_rows,
    planned_counts,
)
from lakehouse.sources.people import COUNTRIES, FEMALE, MALE, Pools

COUNTRY_WEIGHTS = (0.30, 0.09, 0.09, 0.08, 0.06, 0.10, 0.06, 0.10, 0.06, 0.06)
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "mail.net")
EMAIL_DOMAIN_WEIGHTS = (0.45, 0.18, 0.12, 0.12, 0.05, 0.08)
FALLBACK_SLUG = "user"

GENDER_WEIGHTS = {"female": 0.48, "male": 0.47, "non-binary": 0.02, "undisclosed": 0.03}
MIN_AGE_YEARS = 18
MAX_AGE_YEARS = 80
AGE_GAMMA_SHAPE = 2.0
AGE_GAMMA_SCALE_YEARS = 9.0

SIGNUP_HISTORY_DAYS = 4 * 365
NEW_USER_SHARE = 0.12  # signed up during the window
INACTIVE_USER_SHARE = 0.08  # signed up, never watched
ACTIVITY_SIGMA = 1.0  # lognormal spread of sessions per user
RATING_BIAS_SD = 0.4

PLAN_WEIGHTS = {"basic": 0.38, "standard": 0.40, "premium": 0.22}
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
ACTIVE, PAUSED, CHURNED = 0, 1, 2


# Shares of each device in DEVICE_TYPES' order (expectations/domain.py).
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


BAD_BIRTH_DATES = ("not-a-date", "1985-02-30", "31/12/1990", "0000-00-00")
UNKNOWN_PLANS = ("platinum", "family", "trial")


def _slug(text: str) -> str:
    """Lower-case ASCII letters only, for e-mail local parts."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = "".join(ch for ch in ascii_text.lower() if ch.isalnum())
    return slug or FALLBACK_SLUG


@dataclass(frozen=True)
class Users:
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


def build_users(rng: np.random.Generator, spec: ScaleSpec, window: Window, pools: Pools) -> Users:
    """Draw the user base: signups, demographics, plans, changes, churn and activity."""
    n = spec.users
    signup = arrival_times(rng, n, NEW_USER_SHARE, SIGNUP_HISTORY_DAYS, window)

    age_years = np.clip(
        MIN_AGE_YEARS + rng.gamma(AGE_GAMMA_SHAPE, AGE_GAMMA_SCALE_YEARS, n),
        MIN_AGE_YEARS,
        MAX_AGE_YEARS,
    )
    birth_day = window.start_ts // SECONDS_PER_DAY - np.floor(age_years * DAYS_PER_YEAR)
    gender = rng.choice(len(GENDERS), size=n, p=probabilities(shares_in_order(GENDER_WEIGHTS, GENDERS)))
    name_sex = np.where(gender == FEMALE, FEMALE, np.where(gender == MALE, MALE, 0))
    undecided = (gender != FEMALE) & (gender != MALE)
    name_sex = np.where(undecided, rng.integers(0, 2, n), name_sex)
    country = rng.choice(len(COUNTRIES), size=n, p=probabilities(COUNTRY_WEIGHTS))
    first_name = pools.first_offset[country, name_sex] + np.floor(
        rng.random(n) * pools.first_count[country, name_sex]
    ).astype(np.int64)
    last_name = pools.last_offset[country] + np.floor(rng.random(n) * pools.last_count[country]).astype(np.int64)
    city = pools.city_offset[country] + np.floor(rng.random(n) * pools.city_count[country]).astype(np.int64)
    email_domain = rng.choice(len(EMAIL_DOMAINS), size=n, p=probabilities(EMAIL_DOMAIN_WEIGHTS))

    plan = rng.choice(
        len(SUBSCRIPTION_PLANS), size=n, p=probabilities(shares_in_order(PLAN_WEIGHTS, SUBSCRIPTION_PLANS))
    )
    billing = (rng.random(n) < ANNUAL_SHARE).astype(np.int64)
    changed = rng.random(n) < PLAN_CHANGE_SHARE
    change_from = np.maximum(signup, window.start_ts - PLAN_CHANGE_LOOKBACK_DAYS * SECONDS_PER_DAY)
    change_ts = between(rng, change_from, np.full(n, window.end_ts))
    churn_p = np.asarray([CHURN_PROBABILITY_BY_PLAN[name] for name in SUBSCRIPTION_PLANS])[plan]
    churn_p = churn_p * np.where(billing == 1, ANNUAL_CHURN_FACTOR, 1.0)
    draw = rng.random(n)
    status = np.where(draw < churn_p, CHURNED, np.where(draw < churn_p + PAUSE_PROBABILITY, PAUSED, ACTIVE))
    status[0] = ACTIVE  # the earliest user anchors every draw "among users signed up by t"
    status_from = np.maximum(signup, window.start_ts)
    status_ts = between(rng, status_from, np.full(n, window.end_ts))
    lapsed = status != ACTIVE
    inactive_from = np.where(lapsed, status_ts, NEVER)
    updated = np.where(changed, np.maximum(signup, change_ts), signup)
    updated = np.where(lapsed, np.maximum(updated, status_ts), updated)

    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, n)
    activity[rng.random(n) < INACTIVE_USER_SHARE] = 0.0
    activity[0] = max(activity[0], 1.0)
    steady = np.flatnonzero((signup <= window.start_ts) & (status == ACTIVE) & (activity > 0))
    device_cumulative = cumulative_rows(np.asarray([DEVICE_MIX_BY_COUNTRY[code] for code in COUNTRIES]))
    home_device = sample_rows(rng, device_cumulative, country)
    rating_bias = rng.normal(0.0, RATING_BIAS_SD, n)
    return Users(
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
    prices = [Decimal(MONTHLY_PRICE_USD[(plan, cycle)]) for plan in SUBSCRIPTION_PLANS for cycle in BILLING_CYCLES]
    return pa.array(prices, type=PRICE_TYPE)


def write_users(
    path: Path,
    rng: np.random.Generator,
    users: Users,
    pools: Pools,
    window: Window,
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
    plan[is_duplicate] = (plan[is_duplicate] + rng.integers(1, len(SUBSCRIPTION_PLANS), duplicate_source.size)) % len(
        SUBSCRIPTION_PLANS
    )
    updated = users.updated_ts[source].copy()
    later_from = updated[is_duplicate] + 1
    updated[is_duplicate] = between(
        rng, later_from, np.maximum(np.full(later_from.size, window.end_ts), later_from + 1)
    )
    user_id = source + 1
    id_text = pc.cast(pa.array(user_id), pa.string())
    first_slugs = [_slug(name) for name in pools.first_names]
    last_slugs = [_slug(name) for name in pools.last_names]
    email = pc.binary_join_element_wise(
        take(first_slugs, users.first_name[source]),
        ".",
        take(last_slugs, users.last_name[source]),
        id_text,
        "@",
        take(EMAIL_DOMAINS, users.email_domain[source]),
        "",
    )
    birth = replace_rows(
        date_array(users.birth_day[source] * SECONDS_PER_DAY),
        malformed,
        rng.choice(BAD_BIRTH_DATES, size=malformed.size),
    )
    plan_text = replace_rows(
        take(SUBSCRIPTION_PLANS, plan), unknown_plan, rng.choice(UNKNOWN_PLANS, size=unknown_plan.size)
    )
    billing = users.billing[source]
    columns = {
        "user_id": pa.array(user_id, type=pa.int64(), mask=is_null),
        "email": email,
        "first_name": take(pools.first_names, users.first_name[source]),
        "last_name": take(pools.last_names, users.last_name[source]),
        "birth_date": birth,
        "gender": take(GENDERS, users.gender[source]),
        "country": take(COUNTRIES, users.country[source]),
        "city": take(pools.cities, users.city[source]),
        "signup_date": date_array(users.signup_ts[source]),
        "subscription_plan": plan_text,
        "billing_cycle": take(BILLING_CYCLES, billing),
        "monthly_price": take(_price_pool(), plan * len(BILLING_CYCLES) + billing),
        "status": take(SUBSCRIPTION_STATUSES, users.status[source]),
        "updated_at": iso_array(updated),
    }
    write_csv(path, pa.table(columns, schema=USERS_SCHEMA), USERS_SCHEMA)

    log.record(USERS, NULL_KEY, null_source.size)
    log.record(USERS, DUPLICATE_KEY, duplicate_source.size, duplicate_source + 1)
    log.record(USERS, MALFORMED_BIRTH_DATE, malformed.size, malformed + 1)
    log.record(USERS, UNKNOWN_PLAN, unknown_plan.size, unknown_plan + 1)
    return int(source.size)
