"""The domain's value sets and bounds, read from where they are stated: ``dbt/dbt_project.yml``.

The dbt project's ``vars`` hold the values a source row may take (plans, billing cycles,
statuses, devices, qualities, content types, maturity ratings) and the bounds of a rating and
of a session. dbt's tests and models read them with ``var()``; the suites here and the
synthetic sources (``lakehouse/sources``) import these constants, so the gate, dbt and the
generator cannot disagree. Each list keeps the file's order (the generator's weights follow it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DBT_PROJECT_FILE = Path(__file__).resolve().parent.parent / "dbt" / "dbt_project.yml"


def _project_vars() -> dict[str, Any]:
    with DBT_PROJECT_FILE.open() as handle:
        return yaml.safe_load(handle)["vars"]


def _values(name: str) -> tuple[str, ...]:
    values = _VARS[name]
    if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
        raise ValueError(f"{DBT_PROJECT_FILE}: vars.{name} must be a list of strings, got {values!r}")
    return tuple(values)


_VARS = _project_vars()

SUBSCRIPTION_PLANS = _values("subscription_plans")
BILLING_CYCLES = _values("billing_cycles")
SUBSCRIPTION_STATUSES = _values("subscription_statuses")
GENDERS = _values("genders")
DEVICE_TYPES = _values("device_types")
STREAMING_QUALITIES = _values("streaming_qualities")
CONTENT_TYPES = _values("content_types")
MOVIE_MATURITY_RATINGS = _values("movie_maturity_ratings")
SERIES_MATURITY_RATINGS = _values("series_maturity_ratings")
MATURITY_RATINGS = MOVIE_MATURITY_RATINGS + SERIES_MATURITY_RATINGS
MIN_RATING: int = _VARS["min_rating"]
MAX_RATING: int = _VARS["max_rating"]
# A session cannot hold more watch time than this (the absurd_watch_seconds defect lies above).
MAX_SESSION_SECONDS: int = _VARS["max_session_seconds"]
