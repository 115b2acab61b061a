"""The gate's one-pass evaluation gives what Great Expectations' own validator gives.

Every suite of the project (batch, quarantine and table-level, all four tables) runs through
GE's validator (the reference) and through lakehouse.quality.evaluate on the same rows: rows
that break each check in each way (a null, a value below and above its bounds, outside its set,
a duplicate key, a pair in the wrong order or equal), a clean frame and an empty one. The
outcomes the gate stores and prints must be the same, field by field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

import expectations
from expectations.common import INGEST_AGE_HOURS, RECORD_KEY, default_parameters
from lakehouse.bronze.contracts import CONTRACTS
from lakehouse.quality import evaluate, frames, results
from lakehouse.quality.runner import GxRunner

SAMPLE = 5
PARAMETERS = default_parameters(min_batch_rows=3, max_batch_rows=12, freshness_hours=24, today=dt.date(2026, 12, 5))
T0 = dt.datetime(2026, 11, 1, 12, 0, 0)
# A valid row of each table's suite columns; every other row breaks one column of it.
VALID = {
    "users": {
        "birth_date": dt.date(1990, 5, 1),
        "subscription_plan": "basic",
        "billing_cycle": "monthly",
        "monthly_price": Decimal("7.99"),
        "status": "active",
    },
    "viewing_sessions": {
        "user_id": 1,
        "content_id": "c00001",
        "started_at": T0,
        "ended_at": T0 + dt.timedelta(minutes=30),
        "watch_seconds": 1_800,
        "device_type": "tv",
        "streaming_quality": "HD",
        "avg_bitrate_kbps": 3_000,
        "buffering_events": 1,
    },
    "ratings": {"rating": 4, "rated_at": T0, "updated_at": T0 + dt.timedelta(hours=1)},
    "content": {
        "title": "A title",
        "type": "movie",
        "release_year": 2001,
        "duration_minutes": 95,
        "maturity_rating": "PG",
    },
}
# Values that break a column, by its Spark type: below any lower bound, above any upper one.
BROKEN = {
    "string": ["zzz"],
    "int": [-1, 10**9],
    "bigint": [-1, 10**12],
    "date": [dt.date(1800, 1, 1), dt.date(2999, 1, 1)],
    "timestamp": [dt.datetime(2000, 1, 1), dt.datetime(2999, 1, 1)],
    "decimal(10,2)": [Decimal("-1.00"), Decimal("999.00")],
    "double": [-1.0, 1e9],
}


def _schema(table: str) -> T.StructType:
    suites = expectations.build_all([table])[table]
    wanted = {*suites.key, *VALID[table], *(fk.column for fk in suites.foreign_keys)}
    fields = [f for f in CONTRACTS[table].bronze_schema.fields if f.name in wanted]
    by_name = {f.name: f for f in fields}
    fields += [T.StructField(fk.orphan_column, by_name[fk.column].dataType) for fk in suites.foreign_keys]
    return T.StructType([*fields, T.StructField(INGEST_AGE_HOURS, T.DoubleType())])


def _key(table: str, n: int) -> dict[str, Any]:
    return (
        {"user_id": n, "content_id": f"c{n:05d}"}
        if table == "ratings"
        else {
            "users": {"user_id": n},
            "viewing_sessions": {"session_id": n},
            "content": {"content_id": f"c{n:05d}"},
        }[table]
    )


def _rows(table: str, schema: T.StructType) -> list[dict[str, Any]]:
    """A valid row, then per column a null and each broken value, then duplicate keys and
    pairs in the wrong order and equal; orphans on a few rows; each row its own key."""
    base = {f.name: None for f in schema.fields} | VALID[table] | {INGEST_AGE_HOURS: 2.0}
    variants = [{}]
    for field in schema.fields:
        if field.name in VALID[table] or field.name in _key(table, 0) or field.name == INGEST_AGE_HOURS:
            variants.append({field.name: None})
            variants += [{field.name: v} for v in BROKEN[field.dataType.simpleString()]]
    for a, b in (("ended_at", "started_at"), ("updated_at", "rated_at")):
        if a in base:
            variants += [{a: base[b] - dt.timedelta(seconds=1)}, {a: base[b]}, {a: None, b: None}]
    rows = []
    for n, change in enumerate(variants, start=1):
        row = base | _key(table, n) | change
        if n % 4 == 0:
            row |= {c: row.get(c[len("_orphan_") :]) for c in row if c.startswith("_orphan_")}
        rows.append(row)
    duplicate = base | _key(table, 1)
    return [*rows, duplicate, duplicate | {INGEST_AGE_HOURS: 30.0}]


def _clean(valid: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """Two valid rows, too few for the batch's lower bound, and ingested too long ago."""
    return [valid | {INGEST_AGE_HOURS: 30.0}, valid | _key(table, 99) | {INGEST_AGE_HOURS: 31.0}]


def _frame(spark: SparkSession, table: str, rows: list[dict[str, Any]]) -> DataFrame:
    schema = _schema(table)
    return spark.createDataFrame([tuple(r.get(f.name) for f in schema.fields) for r in rows], schema)


def _frames(spark: SparkSession, table: str, rows: list[dict[str, Any]]) -> dict[str, tuple[DataFrame, list[str]]]:
    suites = expectations.build_all([table])[table]
    batch = _frame(spark, table, rows)
    quarantined = spark.createDataFrame([(f"q{i}",) for i in range(len(rows) // 5)], "record_key string")
    key = list(suites.key)
    return {
        suites.batch.name: (batch, key),
        suites.quarantine.name: (frames.quarantine_frame(batch, quarantined), [RECORD_KEY]),
        suites.table_level.name: (batch.select(*key), key),
    }


def _comparable(outcome: results.Outcome, sampled_all: bool) -> dict[str, Any]:
    fields = {
        "expectation": outcome.expectation,
        "column": outcome.column,
        "severity": outcome.severity,
        "success": outcome.success,
        "element_count": outcome.element_count,
        "unexpected_count": outcome.unexpected_count,
        "unexpected_percent": None if outcome.unexpected_percent is None else round(outcome.unexpected_percent, 9),
        "parameters": outcome.parameters,
    }
    if sampled_all:  # every failing row fits in the sample: the same values and keys, any order
        fields["observed"] = sorted((outcome.observed_value or "").split(", "))
        fields["keys"] = sorted(outcome.example_keys)
    return fields


def _identity(outcome: results.Outcome) -> tuple[str, ...]:
    return (outcome.expectation, str(outcome.column), outcome.severity, str(sorted(outcome.parameters.items())))


def _outcomes(validation: Any, table: str, key: list[str]) -> list[results.Outcome]:
    return results.outcomes_from_validation(
        validation, table=table, batch_id="b", key_columns=key, example_limit=SAMPLE
    )


@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_each_suite_gives_what_great_expectations_gives(spark, tmp_path, table: str) -> None:
    """Broken, clean and empty rows through every suite of the table; and each check must fail
    in one of them (the row count's lower bound and the freshness in the clean rows, the rest
    in the broken ones), or the comparison would prove little."""
    broken = _rows(table, _schema(table))
    exercised: dict[tuple[str, ...], bool] = {}
    for rows in (broken, _clean(broken[0], table), []):
        reference = GxRunner(tmp_path / f"docs-{len(rows)}", "parity", example_keys=SAMPLE)  # a context per frame
        for suite in expectations.build_all([table])[table].by_scope().values():
            frame, key = _frames(spark, table, rows)[suite.name]
            frame = frame.cache()
            expected = reference.validate(suite, frame, index_columns=key, parameters=PARAMETERS)
            computed = evaluate.validate(suite, frame, parameters=PARAMETERS, index_columns=key, sample_size=SAMPLE)
            frame.unpersist()
            # GE lists the results in an order of its own; the gate keys them by what they check.
            mine = sorted(_outcomes(computed, table, key), key=_identity)
            theirs = sorted(_outcomes(expected, table, key), key=_identity)
            assert len(mine) == len(theirs) > 0
            for ours, reference_outcome in zip(mine, theirs, strict=True):
                sampled_all = (reference_outcome.unexpected_count or 0) <= SAMPLE
                assert _comparable(ours, sampled_all) == _comparable(reference_outcome, sampled_all), (
                    suite.name,
                    len(rows),
                    reference_outcome.expectation,
                )
                name = (suite.name, *_identity(ours))
                exercised[name] = exercised.get(name, False) or bool(ours.unexpected_count) or not ours.success
    assert [name for name, failed in exercised.items() if not failed] == []


def test_an_expectation_type_it_does_not_compute_is_named(spark) -> None:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="odd", expectations=[gxe.ExpectColumnValuesToMatchRegex(column="a", regex="x")])
    frame = spark.createDataFrame([("x",)], "a string")
    with pytest.raises(evaluate.UnsupportedExpectation, match="expect_column_values_to_match_regex"):
        evaluate.validate(suite, frame, parameters={}, index_columns=["a"], sample_size=1)
