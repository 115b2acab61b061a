"""The expectation suites as code: valid, tagged, tiered, and in line with the generator's values."""

from __future__ import annotations

import json

import pytest

import expectations
from expectations import common, content, ratings, users, viewing_sessions
from lakehouse.bronze.contracts import CONTRACTS
from lakehouse.config import ConfigError, load_config
from lakehouse.sources import catalogue, sessions
from lakehouse.sources import ratings as rating_model
from lakehouse.sources import users as user_model


def _kwargs(expectation) -> dict:
    return {k: v for k, v in expectation.configuration.kwargs.items() if k != "batch_id"}


@pytest.fixture(scope="module")
def suites() -> dict[str, common.TableSuites]:
    return expectations.build_all()


def test_every_bronze_table_has_its_three_named_suites(suites) -> None:
    assert set(suites) == set(CONTRACTS)
    for table, table_suites in suites.items():
        assert table_suites.key == CONTRACTS[table].key
        names = {scope: suite.name for scope, suite in table_suites.by_scope().items()}
        assert names == {scope: f"bronze.{table}.{scope}" for scope in common.SCOPES}
        assert all(suite.expectations for suite in table_suites.by_scope().values())


def test_suites_serialise_to_valid_configurations(suites) -> None:
    for table_suites in suites.values():
        for suite in table_suites.by_scope().values():
            document = json.loads(json.dumps(suite.to_json_dict(), default=str))
            assert len(document["expectations"]) == len(suite.expectations)
            assert all(e["type"].startswith("expect_") for e in document["expectations"])


def test_every_expectation_is_tagged_critical_or_warning_consistently(suites) -> None:
    for table_suites in suites.values():
        for suite in table_suites.by_scope().values():
            for expectation in suite.expectations:
                tag = expectation.meta[common.SEVERITY_META]
                assert tag in common.SEVERITIES
                assert expectation.severity.value == tag
                assert common.severity_of(expectation.configuration) == tag


def test_row_checks_come_as_a_critical_and_a_warning_twin() -> None:
    made = common.tiered(common.gxe.ExpectColumnValuesToBeBetween, column="x", min_value=0, max_value=1)
    critical, warning = made
    assert (critical.severity.value, warning.severity.value) == (common.CRITICAL, common.WARNING)
    assert critical.mostly == pytest.approx(1 - common.CRITICAL_ROW_SHARE)
    assert warning.mostly == 1
    assert {k: v for k, v in _kwargs(critical).items() if k != "mostly"} == {
        k: v for k, v in _kwargs(warning).items() if k != "mostly"
    }


def test_table_level_key_checks_are_critical_and_cover_composite_keys(suites) -> None:
    for table, table_suites in suites.items():
        level = table_suites.table_level.expectations
        assert all(e.severity.value == common.CRITICAL for e in level)
        not_null = {e.column for e in level if e.expectation_type == "expect_column_values_to_not_be_null"}
        assert not_null == set(CONTRACTS[table].key)
    compound = [
        e for e in suites["ratings"].table_level.expectations if e.expectation_type.startswith("expect_compound")
    ]
    assert [e.column_list for e in compound] == [["user_id", "content_id"]]


def test_foreign_keys_are_warnings_with_a_threshold(suites) -> None:
    for table, referenced in (("viewing_sessions", {"users", "content"}), ("ratings", {"users", "content"})):
        fks = suites[table].foreign_keys
        assert {fk.table for fk in fks} == referenced
        checks = [
            e for e in suites[table].batch.expectations if getattr(e, "column", "").startswith(common.ORPHAN_PREFIX)
        ]
        assert {e.meta[common.COLUMN_META] for e in checks} == {"user_id", "content_id"}
        assert all(e.severity.value == common.WARNING for e in checks)
        assert all(e.mostly == pytest.approx(1 - common.ORPHAN_WARNING_SHARE) for e in checks)
    assert suites["users"].foreign_keys == suites["content"].foreign_keys == ()


def test_quarantine_share_is_critical_above_its_threshold(suites) -> None:
    for table_suites in suites.values():
        critical = [e for e in table_suites.quarantine.expectations if e.severity.value == common.CRITICAL]
        assert [(e.column, e.value_set, e.mostly) for e in critical] == [
            (common.QUARANTINED, [False], pytest.approx(1 - common.QUARANTINE_CRITICAL_SHARE))
        ]


def test_the_generator_stays_inside_the_suites_bounds_and_its_defects_outside() -> None:
    """The value sets themselves are stated once (dbt/dbt_project.yml, tests/unit/test_domain.py);
    the bounds below are the suites' own and must hold for what the generator draws."""
    lo, hi = catalogue.MOVIE_MINUTES_RANGE
    assert lo >= content.MIN_DURATION_MINUTES and hi <= content.MAX_DURATION_MINUTES
    assert content.EARLIEST_RELEASE_YEAR <= catalogue.OLDEST_RELEASE_YEAR
    # The defects the gate must catch lie outside the accepted values.
    assert not set(user_model.UNKNOWN_PLANS) & set(users.SUBSCRIPTION_PLANS)
    assert sessions.ABSURD_WATCH_SECONDS_RANGE[0] > viewing_sessions.MAX_SESSION_SECONDS
    assert all(not ratings.MIN_RATING <= r <= ratings.MAX_RATING for r in rating_model.OUT_OF_RANGE_RATINGS)


def test_parameters_are_named_and_all_supplied() -> None:
    with pytest.raises(ValueError, match="unknown suite parameter 'tomorrow'"):
        common.parameter("tomorrow")
    values = common.default_parameters(
        min_batch_rows=1, max_batch_rows=10, freshness_hours=2.0, today=common.dt.date(2026, 3, 1)
    )
    assert set(values) == set(common.SUITE_PARAMETERS)
    assert values[common.TODAY] == "2026-03-01" and values[common.MAX_RELEASE_YEAR] == 2028


def test_unknown_table_and_invalid_expectation_fail_clearly() -> None:
    with pytest.raises(ValueError, match="no expectation suites for bronze table 'films'"):
        expectations.build_all(["films"])
    with pytest.raises(ValueError, match="not valid"):
        common.build_suite("bad", [{"type": "expect_nothing_at_all", "kwargs": {}}])


def test_quality_config_section_loads_and_validates(tmp_path) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_QUALITY_MAX_BATCH_ROWS": "500"}
    config = load_config(env=env)
    assert config.quality.max_batch_rows == 500
    assert config.quality.min_batch_rows == 1
    with pytest.raises(ConfigError, match=r"quality\.min_batch_rows and quality\.max_batch_rows"):
        load_config(env={**env, "LAKEHOUSE_QUALITY_MIN_BATCH_ROWS": "501"})
    with pytest.raises(ConfigError, match=r"quality\.freshness_hours"):
        load_config(env={**env, "LAKEHOUSE_QUALITY_FRESHNESS_HOURS": "0"})
