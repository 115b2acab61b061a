"""A suite's expectations computed in one pass over its DataFrame, as Great Expectations results.

Great Expectations defines the suites (``expectations/``), keeps the results and renders the
Data Docs. Its validator computes each expectation on its own, two to four Spark jobs apiece
(the metric, the null count, the unexpected values, the failing rows' keys): about 40 jobs for
one table's batch suite. Here every expectation of a suite becomes a few columns of **one
aggregate query** (how many rows it considers, how many of them are unexpected, or the
aggregate it bounds); only a check that found unexpected rows costs one more, small query for
its sample values and example keys.

The semantics are GE's own (``great_expectations.expectations``, 1.x, Spark engine): map
checks skip null values (``missing_count``) and apply ``mostly`` to the rows they consider,
``not_be_null`` and ``be_null`` consider every row, column pairs and column lists skip rows by
``ignore_row_if``, bounds are inclusive unless ``strict_min`` / ``strict_max``, and an empty
domain passes. Arguments are resolved (suite parameters, then GE's own model validation of the
expectation, which types the bounds) exactly as GE does. tests/unit/test_gate_evaluate.py runs
every suite of the project through GE's validator and through this module on the same rows and
compares the results field by field.

Only the expectation types the suites use are supported; another one raises
:class:`UnsupportedExpectation` naming it, so a new suite cannot be evaluated wrongly in silence.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
from great_expectations.expectations.expectation import Expectation
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.errors import LakehouseError
from lakehouse.quality.results import TIER_PARAMETERS

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
BE_NULL = "expect_column_values_to_be_null"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
PAIR_GREATER = "expect_column_pair_values_a_to_be_greater_than_b"
ROW_COUNT = "expect_table_row_count_to_be_between"
COLUMN_MIN = "expect_column_min_to_be_between"
SUPPORTED = (IN_SET, BETWEEN, NOT_NULL, BE_NULL, UNIQUE, COMPOUND_UNIQUE, PAIR_GREATER, ROW_COUNT, COLUMN_MIN)
# Checks computed with a window over the rows (the count of rows sharing a value).
WINDOWED = (UNIQUE, COMPOUND_UNIQUE)
# On an empty frame GE reports no unexpected count (null) for single-column checks, but 0 for these.
ZERO_WHEN_EMPTY = (UNIQUE, COMPOUND_UNIQUE, PAIR_GREATER)
# Checks that consider every row (GE reports no missing_count for them).
ALL_ROWS = (NOT_NULL, BE_NULL)
NO_EXCEPTION = {"raised_exception": False, "exception_traceback": None, "exception_message": None}
ROWS = "_rows"


class UnsupportedExpectation(LakehouseError, ValueError):
    """An expectation type this module does not compute."""


@dataclass(frozen=True)
class _Check:
    """One resolved expectation: its GE configuration and the Spark columns that compute it."""

    expectation: Expectation
    considered: Column | None  # the rows the check looks at (None: every row)
    expected: Column | None  # true for a row that meets it (None: an aggregate check)
    shown: tuple[str, ...]  # the columns a failing row shows (partial_unexpected_list)
    aggregate: Column | None = None  # the value an aggregate check bounds

    @property
    def type(self) -> str:
        return self.expectation.expectation_type

    @property
    def unexpected(self) -> Column:
        """True for a considered row that fails the check (a null comparison is not a failure)."""
        failed = ~self.expected
        return failed if self.considered is None else self.considered & failed


def resolve(expectation: Expectation, parameters: dict[str, Any]) -> Expectation:
    """The expectation with its suite parameters filled in and its arguments typed by GE's own
    model (a date bound read from a string becomes a date, an int bound of a float a float)."""
    config = expectation.configuration
    kwargs = {
        key: parameters[value["$PARAMETER"]] if isinstance(value, dict) and "$PARAMETER" in value else value
        for key, value in config.kwargs.items()
    }
    return type(expectation)(**kwargs, meta=config.meta, notes=config.notes, severity=expectation.severity)


def _bounds(column: Column, expectation: Any) -> Column:
    low, high = expectation.min_value, expectation.max_value
    above = None if low is None else (column > F.lit(low) if expectation.strict_min else column >= F.lit(low))
    below = None if high is None else (column < F.lit(high) if expectation.strict_max else column <= F.lit(high))
    if above is None and below is None:
        raise UnsupportedExpectation(f"{expectation.expectation_type} on {expectation.column}: no bound")
    return below if above is None else above if below is None else above & below


def _ignored(columns: Sequence[str], rule: str) -> Column | None:
    """The rows a column-pair or multicolumn check considers, by GE's ``ignore_row_if``."""
    missing = [F.col(c).isNull() for c in columns]
    if rule in ("either_value_is_missing", "any_value_is_missing"):
        return ~reduce(operator.or_, missing)
    if rule in ("both_values_are_missing", "all_values_are_missing"):
        return ~reduce(operator.and_, missing)
    if rule == "never":
        return None
    raise UnsupportedExpectation(f"ignore_row_if={rule!r}")


def _check(expectation: Expectation, position: int) -> _Check:
    kind = expectation.expectation_type
    if kind == IN_SET:
        column = F.col(expectation.column)
        return _Check(expectation, column.isNotNull(), column.isin(list(expectation.value_set)), (expectation.column,))
    if kind == BETWEEN:
        column = F.col(expectation.column)
        return _Check(expectation, column.isNotNull(), _bounds(column, expectation), (expectation.column,))
    if kind == NOT_NULL:
        return _Check(expectation, None, F.col(expectation.column).isNotNull(), (expectation.column,))
    if kind == BE_NULL:
        return _Check(expectation, None, F.col(expectation.column).isNull(), (expectation.column,))
    if kind == UNIQUE:
        column = F.col(expectation.column)
        count = F.count(F.lit(1)).over(Window.partitionBy(column))
        return _Check(expectation, column.isNotNull(), F.col(f"_n{position}") <= 1, (expectation.column,), count)
    if kind == COMPOUND_UNIQUE:
        names = list(expectation.column_list)
        count = F.count(F.lit(1)).over(Window.partitionBy(F.struct(*names)))
        considered = _ignored(names, expectation.ignore_row_if)
        return _Check(expectation, considered, F.col(f"_n{position}") <= 1, tuple(names), count)
    if kind == PAIR_GREATER:
        a, b = F.col(expectation.column_A), F.col(expectation.column_B)
        expected = (a >= b) | a.eqNullSafe(b) if expectation.or_equal else a > b
        considered = _ignored([expectation.column_A, expectation.column_B], expectation.ignore_row_if)
        return _Check(expectation, considered, expected, (expectation.column_A, expectation.column_B))
    if kind == ROW_COUNT:
        return _Check(expectation, None, None, (), F.count(F.lit(1)))
    if kind == COLUMN_MIN:
        return _Check(expectation, None, None, (), F.min(F.col(expectation.column)))
    raise UnsupportedExpectation(
        f"{kind}: the gate computes only {', '.join(SUPPORTED)} (lakehouse/quality/evaluate.py)"
    )


def _windowed(frame: DataFrame, checks: Sequence[_Check]) -> DataFrame:
    """The frame with each uniqueness check's count of rows sharing its value (``_n<i>``).

    Counted over every row: the rows a check skips (null values) share no value with the rows
    it considers, so the counts of those are what GE counts over the considered rows alone."""
    extra = [c.aggregate.alias(f"_n{i}") for i, c in enumerate(checks) if c.type in WINDOWED]
    return frame.select("*", *extra) if extra else frame


def _map_result(
    check: _Check, rows: int, considered: int, unexpected: int | None, sample: list[dict]
) -> tuple[bool, dict]:
    """GE's verdict and SUMMARY result of a map check from its counts and sample rows."""
    all_rows = check.type in ALL_ROWS
    nonnull = rows if all_rows else considered
    if unexpected is None or rows == 0 or nonnull == 0:
        success = True  # GE: vacuously true
    else:
        success = (nonnull - unexpected) / nonnull >= (check.expectation.mostly or 1.0)
    values = [_shown(row, check) for row in sample]
    result: dict[str, Any] = {
        "element_count": rows,
        "unexpected_count": unexpected,
        "unexpected_percent": None,
        "partial_unexpected_list": values,
    }
    if unexpected is not None and rows > 0:
        total = unexpected / rows * 100
        result["unexpected_percent"] = total if all_rows else (unexpected / nonnull * 100 if nonnull else None)
    if not all_rows:
        missing = rows - nonnull
        result.update(
            missing_count=missing,
            missing_percent=missing / rows * 100 if rows else None,
            unexpected_percent_total=unexpected / rows * 100 if rows and unexpected is not None else None,
            unexpected_percent_nonmissing=result["unexpected_percent"],
        )
    result["partial_unexpected_counts"] = _value_counts(values)
    return success, result


def _shown(row: dict, check: _Check) -> Any:
    """What GE lists for one failing row: the value, the pair of values, or the columns' dict."""
    if check.type == COMPOUND_UNIQUE:
        return {c: row[c] for c in check.shown}
    if check.type == PAIR_GREATER:
        return tuple(row[c] for c in check.shown)
    return row[check.shown[0]]


def _value_counts(values: list[Any]) -> list[dict[str, Any]]:
    hashable = [tuple(sorted(v.items())) if isinstance(v, dict) else v for v in values]
    counts = Counter(hashable)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [
        {"value": dict(v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else v, "count": n}
        for v, n in ordered
    ]


def _aggregate_result(check: _Check, observed: Any) -> tuple[bool, dict]:
    """GE's verdict of a bounded aggregate (``_validate_metric_value_between``)."""
    expectation = check.expectation
    if observed is None:
        return False, {"observed_value": None}
    low, high = expectation.min_value, expectation.max_value
    if isinstance(observed, dt.datetime) and isinstance(low, dt.date) and not isinstance(low, dt.datetime):
        observed = observed.date()
    above = low is None or (observed > low if getattr(expectation, "strict_min", False) else observed >= low)
    below = high is None or (observed < high if getattr(expectation, "strict_max", False) else observed <= high)
    return bool(above and below), {"observed_value": observed}


def validate(
    suite: Any,
    frame: DataFrame,
    *,
    parameters: dict[str, Any],
    index_columns: Sequence[str],
    sample_size: int,
    batch_id: str | None = None,
) -> ExpectationSuiteValidationResult:
    """Every expectation of ``suite`` on ``frame`` in one aggregate query (plus one small query
    per check that found unexpected rows), as GE's suite validation result with SUMMARY results:
    ``partial_unexpected_list`` and ``partial_unexpected_index_list`` hold at most
    ``sample_size`` failing rows, each naming ``index_columns``."""
    expectations = [resolve(e, parameters) for e in suite.expectations]
    checks = [_check(e, i) for i, e in enumerate(expectations)]
    frame = _windowed(frame, checks)
    columns = [F.count(F.lit(1)).alias(ROWS)]
    for i, check in enumerate(checks):
        if check.expected is None:
            columns.append(check.aggregate.alias(f"_a{i}"))
            continue
        considered = F.lit(True) if check.considered is None else check.considered
        columns.append(F.sum(F.when(considered, 1).otherwise(0)).alias(f"_c{i}"))
        columns.append(F.sum(F.when(check.unexpected, 1).otherwise(0)).alias(f"_u{i}"))
    totals = frame.agg(*columns).first().asDict()
    rows = int(totals[ROWS])
    samples: dict[str, list[dict]] = {}
    results = []
    for i, check in enumerate(checks):
        if check.expected is None:
            success, result = _aggregate_result(check, totals[f"_a{i}"])
        else:
            # An empty frame sums to null: GE reports no unexpected count then, and passes.
            considered, unexpected = int(totals[f"_c{i}"] or 0), totals[f"_u{i}"]
            if unexpected is None and check.type in ZERO_WHEN_EMPTY:
                unexpected = 0
            # The critical and warning twins of a row check differ only in `mostly`: one sample query.
            kwargs = check.expectation.configuration.kwargs
            condition = json.dumps(
                [check.type, {k: v for k, v in kwargs.items() if k not in TIER_PARAMETERS}], sort_keys=True, default=str
            )
            wanted = list(dict.fromkeys([*index_columns, *check.shown]))
            if unexpected and condition not in samples:
                samples[condition] = [
                    r.asDict() for r in frame.filter(check.unexpected).select(*wanted).limit(sample_size).collect()
                ]
            sample = samples.get(condition, []) if unexpected else []
            success, result = _map_result(check, rows, considered, unexpected, sample)
            result["unexpected_index_column_names"] = list(index_columns)
            result["partial_unexpected_index_list"] = [{c: row[c] for c in wanted} for row in sample]
        config = check.expectation.configuration
        if batch_id is not None:
            config.kwargs["batch_id"] = batch_id
        results.append(
            ExpectationValidationResult(
                success=success, expectation_config=config, result=result, exception_info=dict(NO_EXCEPTION)
            )
        )
    passed = sum(r.success for r in results)
    return ExpectationSuiteValidationResult(
        success=passed == len(results),
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": passed / len(results) * 100 if results else None,
        },
        batch_id=batch_id,
    )
