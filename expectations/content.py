"""Suites of ``bronze.content`` (MongoDB documents): titles, types, maturity, years, durations."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from expectations.common import MAX_RELEASE_YEAR, ForeignKey, TableSuites, build_table_suites, parameter, tiered
from expectations.domain import CONTENT_TYPES, MATURITY_RATINGS

TABLE = "content"
KEY = ("content_id",)
FOREIGN_KEYS: tuple[ForeignKey, ...] = ()

# Earliest plausible release year of a title in the catalogue; the latest is a suite parameter
# (this year plus a lead for announced titles).
EARLIEST_RELEASE_YEAR = 1900
# A movie's runtime in minutes (series carry their durations per episode).
MIN_DURATION_MINUTES, MAX_DURATION_MINUTES = 1, 600


def row_checks() -> list[Expectation]:
    """Row-level checks on the batch (critical above the shared share, warning on any row)."""
    return [
        *tiered(gxe.ExpectColumnValuesToNotBeNull, column="title"),
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="type", value_set=list(CONTENT_TYPES)),
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="maturity_rating", value_set=list(MATURITY_RATINGS)),
        *tiered(
            gxe.ExpectColumnValuesToBeBetween,
            column="release_year",
            min_value=EARLIEST_RELEASE_YEAR,
            max_value=parameter(MAX_RELEASE_YEAR),
        ),
        *tiered(
            gxe.ExpectColumnValuesToBeBetween,
            column="duration_minutes",
            min_value=MIN_DURATION_MINUTES,
            max_value=MAX_DURATION_MINUTES,
        ),
    ]


def build() -> TableSuites:
    return build_table_suites(TABLE, KEY, FOREIGN_KEYS, row_checks())
