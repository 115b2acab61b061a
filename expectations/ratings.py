"""Suites of ``bronze.ratings``: rating scale, edit order, references, composite key."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from expectations.common import ForeignKey, TableSuites, build_table_suites, tiered, warning
from expectations.domain import MAX_RATING, MIN_RATING

TABLE = "ratings"
KEY = ("user_id", "content_id")
FOREIGN_KEYS = (
    ForeignKey("user_id", "users", "user_id"),
    ForeignKey("content_id", "content", "content_id"),
)


def row_checks() -> list[Expectation]:
    """Row-level checks on the batch (critical above the shared share, warning on any row)."""
    return [
        *tiered(gxe.ExpectColumnValuesToBeBetween, column="rating", min_value=MIN_RATING, max_value=MAX_RATING),
        # An edit moves updated_at forward; it never precedes the rating itself.
        warning(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="updated_at", column_B="rated_at", or_equal=True, ignore_row_if="either_value_is_missing"
            )
        ),
    ]


def build() -> TableSuites:
    return build_table_suites(TABLE, KEY, FOREIGN_KEYS, row_checks())
