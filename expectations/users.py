"""Suites of ``bronze.users`` (PostgreSQL users): plans, billing, status, birth dates, key."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from expectations.common import TODAY, ForeignKey, TableSuites, build_table_suites, parameter, tiered, warning
from expectations.domain import BILLING_CYCLES, SUBSCRIPTION_PLANS, SUBSCRIPTION_STATUSES

TABLE = "users"
KEY = ("user_id",)
FOREIGN_KEYS: tuple[ForeignKey, ...] = ()

# Nobody alive was born earlier; nobody is born in the future (upper bound: today).
EARLIEST_BIRTH_DATE = "1900-01-01"
MAX_MONTHLY_PRICE_USD = 100


def row_checks() -> list[Expectation]:
    """Row-level checks on the batch (critical above the shared share, warning on any row)."""
    return [
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="subscription_plan", value_set=list(SUBSCRIPTION_PLANS)),
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="billing_cycle", value_set=list(BILLING_CYCLES)),
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="status", value_set=list(SUBSCRIPTION_STATUSES)),
        *tiered(
            gxe.ExpectColumnValuesToBeBetween,
            column="birth_date",
            min_value=EARLIEST_BIRTH_DATE,
            max_value=parameter(TODAY),
        ),
        warning(
            gxe.ExpectColumnValuesToBeBetween(column="monthly_price", min_value=0, max_value=MAX_MONTHLY_PRICE_USD)
        ),
    ]


def build() -> TableSuites:
    return build_table_suites(TABLE, KEY, FOREIGN_KEYS, row_checks())
