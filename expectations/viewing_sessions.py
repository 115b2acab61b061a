"""Suites of ``bronze.viewing_sessions``: watch time, session order, devices, quality, references."""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation

from expectations.common import ForeignKey, TableSuites, build_table_suites, tiered, warning
from expectations.domain import DEVICE_TYPES, MAX_SESSION_SECONDS, STREAMING_QUALITIES

TABLE = "viewing_sessions"
KEY = ("session_id",)
FOREIGN_KEYS = (
    ForeignKey("user_id", "users", "user_id"),
    ForeignKey("content_id", "content", "content_id"),
)

MAX_BITRATE_KBPS = 100_000


def row_checks() -> list[Expectation]:
    """Row-level checks on the batch (critical above the shared share, warning on any row)."""
    return [
        *tiered(gxe.ExpectColumnValuesToBeBetween, column="watch_seconds", min_value=0, max_value=MAX_SESSION_SECONDS),
        *tiered(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB,
            column_A="ended_at",
            column_B="started_at",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="device_type", value_set=list(DEVICE_TYPES)),
        *tiered(gxe.ExpectColumnValuesToBeInSet, column="streaming_quality", value_set=list(STREAMING_QUALITIES)),
        warning(gxe.ExpectColumnValuesToBeBetween(column="avg_bitrate_kbps", min_value=0, max_value=MAX_BITRATE_KBPS)),
        warning(gxe.ExpectColumnValuesToBeBetween(column="buffering_events", min_value=0)),
    ]


def build() -> TableSuites:
    return build_table_suites(TABLE, KEY, FOREIGN_KEYS, row_checks())
