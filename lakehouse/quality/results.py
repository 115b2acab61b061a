"""Expectation outcomes: from Great Expectations results to rows, messages and ``ops.dq_results``.

An :class:`Outcome` is one expectation's result on one batch, flattened: table, suite, the
expectation and its column, severity, success, observed value, unexpected count and share, and
a few keys of failing rows. The gate prints them (:func:`describe`), stores them in
``ops.dq_results`` (:func:`write_results`, one Delta commit per gate run) and the audit rows
summarise them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from expectations.common import COLUMN_META, CRITICAL, WARNING, severity_of
from lakehouse.audit import AUTO_COMPACT
from lakehouse.spark import ensure_database

OPS_SCHEMA = "ops"
DQ_RESULTS_TABLE = f"{OPS_SCHEMA}.dq_results"
# Expectation arguments that are not thresholds (shown separately, or GE bookkeeping).
NOT_PARAMETERS = ("batch_id", "column", "column_A", "column_B", "column_list", "result_format", "catch_exceptions")
# Arguments that differ between the critical and the warning twin of one row check.
TIER_PARAMETERS = ("mostly",)
MAX_OBSERVED_CHARS = 500
MAX_VALUE_CHARS = 60
GATE_ERROR = "gate_error"

DQ_RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("batch_id", T.StringType()),
        T.StructField("table_name", T.StringType(), False),
        T.StructField("suite", T.StringType(), False),
        T.StructField("expectation", T.StringType(), False),
        T.StructField("column", T.StringType()),
        T.StructField("severity", T.StringType(), False),
        T.StructField("success", T.BooleanType(), False),
        T.StructField("observed_value", T.StringType()),
        T.StructField("element_count", T.LongType()),
        T.StructField("unexpected_count", T.LongType()),
        T.StructField("unexpected_percent", T.DoubleType()),
        T.StructField("example_keys", T.StringType()),
        T.StructField("parameters", T.StringType()),
        T.StructField("validated_at", T.TimestampType(), False),
    ]
)


@dataclass(frozen=True)
class Outcome:
    """One expectation's result on one batch (or on the whole table, for key checks)."""

    table: str
    suite: str
    batch_id: str | None
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed_value: str | None = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    example_keys: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    validated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def failed_critical(self) -> bool:
        return not self.success and self.severity == CRITICAL

    @property
    def failed_warning(self) -> bool:
        return not self.success and self.severity == WARNING

    @property
    def check(self) -> tuple[str, str, str, str | None, str]:
        """What the expectation checks, the same for the critical and warning twin of a row check."""
        thresholds = {k: v for k, v in self.parameters.items() if k not in TIER_PARAMETERS}
        return (self.table, self.suite, self.expectation, self.column, _json(thresholds))

    def as_row(self, run_id: str) -> tuple[Any, ...]:
        """The ``ops.dq_results`` row (same order as :data:`DQ_RESULTS_SCHEMA`)."""
        return (
            run_id,
            self.batch_id,
            self.table,
            self.suite,
            self.expectation,
            self.column,
            self.severity,
            self.success,
            self.observed_value,
            self.element_count,
            self.unexpected_count,
            None if self.unexpected_percent is None else float(self.unexpected_percent),
            ", ".join(self.example_keys) or None,
            _json(self.parameters) if self.parameters else None,
            self.validated_at,
        )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, tuple):  # a pair of values (column pair expectations)
        return "(" + ", ".join(_plain(v) for v in value) + ")"
    return str(value)


def _text(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    text = _plain(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _column_of(kwargs: dict[str, Any], meta: dict[str, Any]) -> str | None:
    if meta.get(COLUMN_META):
        return str(meta[COLUMN_META])
    if kwargs.get("column"):
        return str(kwargs["column"])
    if kwargs.get("column_A") and kwargs.get("column_B"):
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    if kwargs.get("column_list"):
        return ",".join(str(c) for c in kwargs["column_list"])
    return None


def _exception_message(exception_info: Any) -> str | None:
    """The first error message GE caught while computing the expectation, if any.

    GE reports either one ``{"raised_exception": ...}`` dict or one such dict per metric.
    """
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            message = str(info.get("exception_message") or "error").strip()
            return message.splitlines()[0] if message else "error"
    return None


def example_keys(
    index_list: Sequence[dict[str, Any]] | None, key_columns: Sequence[str], limit: int
) -> tuple[str, ...]:
    """Distinct keys of failing rows, parts of a composite key joined by ``|``, at most ``limit``."""
    keys: dict[str, None] = {}
    for entry in index_list or []:
        if len(keys) >= limit:
            break
        keys["|".join(_text(entry.get(column)) for column in key_columns)] = None
    return tuple(keys)


def _observed(result: dict[str, Any]) -> str | None:
    """The aggregate's observed value, or a sample of the unexpected values for row checks."""
    if "observed_value" in result:
        return _text(result["observed_value"], MAX_OBSERVED_CHARS)
    sample = list(dict.fromkeys(_text(v) for v in result.get("partial_unexpected_list") or []))
    return ", ".join(sample)[:MAX_OBSERVED_CHARS] or None


def outcomes_from_validation(
    validation: Any,
    *,
    table: str,
    batch_id: str | None,
    key_columns: Sequence[str],
    example_limit: int,
    validated_at: dt.datetime | None = None,
) -> list[Outcome]:
    """Flatten an ``ExpectationSuiteValidationResult`` into outcomes."""
    validated_at = validated_at or dt.datetime.now(dt.UTC)
    suite = str(validation.suite_name)
    outcomes = []
    for item in validation.results:
        config = item.expectation_config
        kwargs = dict(config.kwargs)
        meta = dict(config.meta or {})
        result = dict(item.result or {})
        error = _exception_message(item.exception_info)
        observed = f"error: {error}" if error else _observed(result)
        outcomes.append(
            Outcome(
                table=table,
                suite=suite,
                batch_id=batch_id,
                expectation=str(config.type),
                column=_column_of(kwargs, meta),
                severity=severity_of(config),
                success=bool(item.success) and error is None,
                observed_value=observed,
                element_count=result.get("element_count"),
                unexpected_count=result.get("unexpected_count"),
                unexpected_percent=result.get("unexpected_percent"),
                example_keys=example_keys(result.get("partial_unexpected_index_list"), key_columns, example_limit),
                key_columns=tuple(key_columns),
                parameters={k: v for k, v in kwargs.items() if k not in NOT_PARAMETERS and v is not None},
                validated_at=validated_at,
            )
        )
    return outcomes


def gate_error(table: str, batch_id: str | None, message: str) -> Outcome:
    """A table the gate could not validate: a critical failure, since nothing vouches for it."""
    return Outcome(
        table=table,
        suite=f"bronze.{table}",
        batch_id=batch_id,
        expectation=GATE_ERROR,
        column=None,
        severity=CRITICAL,
        success=False,
        observed_value=f"error: {message}"[:MAX_OBSERVED_CHARS],
    )


def _parameters_text(parameters: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in sorted(parameters.items()))


def describe(outcome: Outcome) -> str:
    """One line naming the table, column, expectation, the unexpected count and example keys."""
    target = f"bronze.{outcome.table}" + (f".{outcome.column}" if outcome.column else "")
    scope = outcome.suite.rsplit(".", 1)[-1]
    head = f"{target} [{scope}] {outcome.expectation}"
    if outcome.parameters:
        head += f" ({_parameters_text(outcome.parameters)})"
    if outcome.unexpected_count is not None:
        detail = f"{outcome.unexpected_count:,} unexpected"
        if outcome.element_count is not None:
            detail += f" of {outcome.element_count:,} rows"
        if outcome.unexpected_percent is not None:
            detail += f" ({outcome.unexpected_percent:.2f} %)"
        if outcome.observed_value:
            detail += f"; values: {outcome.observed_value}"
    else:
        detail = f"observed {outcome.observed_value}"
    if outcome.example_keys:
        detail += f"; example {'|'.join(outcome.key_columns)}: {', '.join(outcome.example_keys)}"
    return f"{head}: {detail}"


def ensure_results_table(spark: SparkSession) -> None:
    from delta.tables import DeltaTable

    ensure_database(spark, OPS_SCHEMA)
    DeltaTable.createIfNotExists(spark).tableName(DQ_RESULTS_TABLE).addColumns(DQ_RESULTS_SCHEMA).property(
        AUTO_COMPACT, "true"
    ).comment("One row per expectation and validated bronze batch; rows of one gate run share run_id.").execute()


def write_results(spark: SparkSession, run_id: str, outcomes: Iterable[Outcome]) -> int:
    """Append the outcomes of one gate run in one Delta commit; return how many rows."""
    rows = [o.as_row(run_id) for o in outcomes]
    if not rows:
        return 0
    ensure_results_table(spark)
    spark.createDataFrame(rows, DQ_RESULTS_SCHEMA).write.format("delta").mode("append").saveAsTable(DQ_RESULTS_TABLE)
    return len(rows)


VERDICTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("source_table", T.StringType(), False),
        T.StructField("verdict", T.StringType(), False),
        T.StructField("bronze_version", T.LongType(), False),
        T.StructField("high_water", T.TimestampType(), True),
        T.StructField("rows_validated", T.LongType(), True),
        T.StructField("decided_at", T.TimestampType(), False),
        T.StructField("inputs", T.StringType(), True),
    ]
)


@dataclass(frozen=True)
class Verdict:
    """The gate's verdict on what was pending in one table (see lakehouse.quality.verdicts)."""

    table: str
    passed: bool
    bronze_version: int
    high_water_us: int | None  # the newest ingest or quarantine time it saw
    rows: int | None


def write_verdicts(spark: SparkSession, run_id: str, verdicts: Sequence[Verdict], inputs: str | None = None) -> None:
    """Append the verdicts of one gate run to ops.gate_verdicts in one Delta commit, with the
    run's inputs (lakehouse.quality.verdicts.gate_inputs)."""
    from delta.tables import DeltaTable

    from lakehouse.bronze.watermarks import utc_from_micros
    from lakehouse.quality.verdicts import FAILED, INPUTS_COLUMN, PASSED, VERDICTS_TABLE

    if not verdicts:
        return
    ensure_database(spark, VERDICTS_TABLE.split(".")[0])
    DeltaTable.createIfNotExists(spark).tableName(VERDICTS_TABLE).addColumns(VERDICTS_SCHEMA).property(
        AUTO_COMPACT, "true"
    ).comment("The quality gate's verdict per bronze table: a passed one covers the table up to high_water.").execute()
    if INPUTS_COLUMN not in spark.table(VERDICTS_TABLE).columns:  # a table from before inputs were kept
        spark.sql(
            f"alter table {VERDICTS_TABLE} add columns "
            f"({INPUTS_COLUMN} string comment 'bronze and quarantine versions and rules the gate read (JSON)')"
        )
    # Aware UTC datetimes go into Spark unchanged (only collect() turns them local).
    decided_at = dt.datetime.now(dt.UTC)
    rows = [
        (
            run_id,
            v.table,
            PASSED if v.passed else FAILED,
            v.bronze_version,
            utc_from_micros(v.high_water_us),
            v.rows,
            decided_at,
            inputs,
        )
        for v in verdicts
    ]
    spark.createDataFrame(rows, VERDICTS_SCHEMA).write.format("delta").mode("append").saveAsTable(VERDICTS_TABLE)
