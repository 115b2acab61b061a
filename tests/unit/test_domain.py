"""The domain's value sets are stated once, in dbt/dbt_project.yml, and everything reads them.

dbt reads them with var(), the suites and the generator through expectations/domain.py. These
tests fail when a list is written out again somewhere, or when one of the generator's tables
of shares (per plan, per device, per quality) stops covering exactly the domain's values.
"""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

import pytest
import yaml

from expectations import domain
from lakehouse.config import PROJECT_ROOT
from lakehouse.sources import catalogue, sessions, users

VALUE_SETS = {
    "subscription_plans": domain.SUBSCRIPTION_PLANS,
    "billing_cycles": domain.BILLING_CYCLES,
    "subscription_statuses": domain.SUBSCRIPTION_STATUSES,
    "genders": domain.GENDERS,
    "device_types": domain.DEVICE_TYPES,
    "streaming_qualities": domain.STREAMING_QUALITIES,
    "content_types": domain.CONTENT_TYPES,
    "movie_maturity_ratings": domain.MOVIE_MATURITY_RATINGS,
    "series_maturity_ratings": domain.SERIES_MATURITY_RATINGS,
}
# Where the project states things: code, suites, the dbt project (tests/ keeps its own literal
# oracles on purpose: an expected value must not come from the code under test).
SEARCHED = ("lakehouse", "expectations", "jobs", "dbt/models", "dbt/snapshots", "dbt/macros", "dbt/tests")
SUFFIXES = {".py", ".sql", ".yml", ".yaml"}


def _written_out(values: tuple[str, ...]) -> re.Pattern[str]:
    """A set's first values (three, or both of a pair) as neighbours in a written list:
    `basic, standard, premium`, `'basic', 'standard', 'premium'`, `("basic", "standard", ...`."""
    quoted = [rf"""['"]?{re.escape(v)}['"]?""" for v in values[:3]]
    return re.compile(r"(?<![\w-])" + r"\s*,\s*".join(quoted) + r"(?![\w-])")


def test_the_values_come_from_the_dbt_project() -> None:
    project_vars = yaml.safe_load(domain.DBT_PROJECT_FILE.read_text())["vars"]
    assert domain.DBT_PROJECT_FILE == PROJECT_ROOT / "dbt" / "dbt_project.yml"
    for name, values in VALUE_SETS.items():
        assert values == tuple(project_vars[name]), name
        assert len(set(values)) == len(values) >= 2, name
    assert (project_vars["min_rating"], project_vars["max_rating"]) == (domain.MIN_RATING, domain.MAX_RATING)
    assert project_vars["max_session_seconds"] == domain.MAX_SESSION_SECONDS


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_no_value_set_is_written_out_a_second_time(name: str) -> None:
    pattern = _written_out(VALUE_SETS[name])
    copies = [
        f"{path.relative_to(PROJECT_ROOT)}:{text[: match.start()].count(chr(10)) + 1}"
        for folder in SEARCHED
        for path in sorted((PROJECT_ROOT / folder).rglob("*"))
        if path.suffix in SUFFIXES and "lint_context" not in path.parts
        for text in [path.read_text()]
        for match in pattern.finditer(text)
    ]
    assert copies == [], (
        f"vars.{name} of dbt/dbt_project.yml written out again; use var('{name}') or expectations.domain"
    )


def test_the_pattern_finds_a_list_written_out() -> None:
    pattern = _written_out(domain.SUBSCRIPTION_PLANS)
    for written in (
        "values: [basic, standard, premium]",
        "in ('basic', 'standard', 'premium')",
        'P = ("basic", "standard", "premium")',
    ):
        assert pattern.search(written), written
    for prose in ("basic/standard/premium", "nonbasic, standard, premium", "basic, standard"):
        assert not pattern.search(prose), prose


def test_the_generators_tables_of_shares_cover_each_value_exactly_once() -> None:
    plans, devices, qualities = domain.SUBSCRIPTION_PLANS, domain.DEVICE_TYPES, domain.STREAMING_QUALITIES
    assert (
        set(users.PLAN_WEIGHTS) == set(users.CHURN_PROBABILITY_BY_PLAN) == set(sessions.PLAN_MAX_QUALITY) == set(plans)
    )
    assert set(users.MONTHLY_PRICE_USD) == set(product(plans, domain.BILLING_CYCLES))
    assert set(users.GENDER_WEIGHTS) == set(domain.GENDERS)
    assert all(len(shares) == len(devices) for shares in users.DEVICE_MIX_BY_COUNTRY.values())
    assert set(sessions.OS_BY_DEVICE) == set(sessions.QUALITY_MIX_BY_DEVICE) == set(devices)
    assert all(len(shares) == len(qualities) for shares in sessions.QUALITY_MIX_BY_DEVICE.values())
    assert set(sessions.BITRATE_KBPS_RANGE) == set(sessions.BUFFERING_PER_HOUR_BY_QUALITY) == set(qualities)
    assert set(sessions.PLAN_MAX_QUALITY.values()) <= set(qualities)
    assert set(devices) >= sessions.HANDHELD_DEVICES
    assert set(catalogue.MOVIE_MATURITY_WEIGHTS) == set(domain.MOVIE_MATURITY_RATINGS)
    assert set(catalogue.SERIES_MATURITY_WEIGHTS) == set(domain.SERIES_MATURITY_RATINGS)
    assert (catalogue.MOVIE, catalogue.SERIES) == domain.CONTENT_TYPES


def test_shares_in_order_names_a_value_without_a_share() -> None:
    from lakehouse.sources.common import shares_in_order

    assert shares_in_order({"b": 2.0, "a": 1.0}, ("a", "b")) == (1.0, 2.0)
    with pytest.raises(ValueError, match=r"\['a'\] do not match the value set \['a', 'b'\]"):
        shares_in_order({"a": 1.0}, ("a", "b"))


def test_the_dbt_project_states_each_value_set_as_a_list() -> None:
    text = Path(domain.DBT_PROJECT_FILE).read_text()
    for name in VALUE_SETS:
        assert re.search(rf"^  {name}: \[", text, re.MULTILINE), name
