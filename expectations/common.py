"""What every bronze suite shares: severities, thresholds, derived columns and suite builders.

Each bronze table is checked by three Great Expectations suites, each on its own DataFrame:

``bronze.<table>.batch``
    the rows of the batch under validation (``_batch_id``), plus columns the gate derives in
    Spark: ``_orphan_<fk>`` (the foreign key when it resolves to no row of the referenced bronze
    table, else null) and ``_ingest_age_hours``. Row-level checks, the batch's row count band and
    freshness.
``bronze.<table>.table``
    the key columns of the whole bronze table: key not null and unique.
``bronze.<table>.quarantine``
    one row per source row of the batch: the rows that landed in bronze (``_quarantined`` false)
    and those that went to ``bronze.quarantine`` (true, with ``_record_key``): the quarantine share.

Every expectation carries a severity, in GE's own ``severity`` field and mirrored in
``meta["severity"]``: a failed *critical* expectation stops the pipeline, a failed *warning*
is reported and the run goes on.

Thresholds policy
-----------------
The generator's default ``defect_rate`` (1 %) spreads about 0.1-0.3 % defective rows per defect
kind over a batch. A row check is therefore declared twice (:func:`tiered`): a *warning* that
fails on any defective row, and a *critical* twin with ``mostly`` that fails only when more than
:data:`CRITICAL_ROW_SHARE` of the batch's rows have that defect. Default data passes with
warnings; a batch where one defect kind exceeds its threshold fails. Keys are stricter: a null
or duplicate key anywhere in a bronze table is critical. Unresolvable foreign keys are only ever
a warning (late-arriving dimensions are real), above :data:`ORPHAN_WARNING_SHARE`.

Values that depend on the environment (the batch row band, the freshness limit, today's date)
are suite parameters (``{"$PARAMETER": name}``) filled in at validation time by the gate from
``conf/lakehouse.yaml`` (section ``quality``); see :data:`SUITE_PARAMETERS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity

CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)
SEVERITY_META = "severity"
# meta key: the source column a check is about, when the expectation runs on a derived column.
COLUMN_META = "column"

# --- thresholds (shares of the rows of one batch) --------------------------------------------
# More than 2 % of a batch's rows with one defect kind (negative watch time, unknown plan, ...):
# critical. Default data carries ~0.1-0.3 % per kind, so it stays a warning.
CRITICAL_ROW_SHARE = 0.02
# More than 1 % of a batch's rows pointing at no user or title: warning (never critical).
ORPHAN_WARNING_SHARE = 0.01
# More than 5 % of a batch's source rows quarantined: critical (any at all: warning).
QUARANTINE_CRITICAL_SHARE = 0.05

# --- suite parameters, supplied by the gate at validation time --------------------------------
MIN_BATCH_ROWS = "min_batch_rows"
MAX_BATCH_ROWS = "max_batch_rows"
FRESHNESS_HOURS = "freshness_hours"
TODAY = "today"  # ISO date: upper bound of dates that cannot lie in the future
MAX_RELEASE_YEAR = "max_release_year"
SUITE_PARAMETERS = (MIN_BATCH_ROWS, MAX_BATCH_ROWS, FRESHNESS_HOURS, TODAY, MAX_RELEASE_YEAR)
# Titles are announced ahead of their release: a release year this far ahead is plausible.
RELEASE_YEAR_LEAD_YEARS = 2

# --- derived columns of the batch frame (added by the gate, see module docstring) -------------
INGEST_AGE_HOURS = "_ingest_age_hours"
QUARANTINED = "_quarantined"
RECORD_KEY = "_record_key"
ORPHAN_PREFIX = "_orphan_"

BATCH_SCOPE = "batch"
TABLE_SCOPE = "table"
QUARANTINE_SCOPE = "quarantine"
SCOPES = (BATCH_SCOPE, TABLE_SCOPE, QUARANTINE_SCOPE)


@dataclass(frozen=True)
class ForeignKey:
    """``column`` of this table must name a row of ``bronze.<table>`` by ``ref_column``."""

    column: str
    table: str
    ref_column: str

    @property
    def orphan_column(self) -> str:
        """The derived column: the value of ``column`` when it resolves to nothing, else null."""
        return f"{ORPHAN_PREFIX}{self.column}"


@dataclass(frozen=True)
class TableSuites:
    """The three suites of one bronze table and what the gate needs to build their DataFrames."""

    table: str
    key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    batch: gx.ExpectationSuite
    table_level: gx.ExpectationSuite
    quarantine: gx.ExpectationSuite

    def by_scope(self) -> dict[str, gx.ExpectationSuite]:
        return {BATCH_SCOPE: self.batch, TABLE_SCOPE: self.table_level, QUARANTINE_SCOPE: self.quarantine}


def suite_name(table: str, scope: str) -> str:
    return f"bronze.{table}.{scope}"


def parameter(name: str) -> dict[str, str]:
    """A suite parameter reference, resolved by the gate at validation time."""
    if name not in SUITE_PARAMETERS:
        raise ValueError(f"unknown suite parameter {name!r}: known are {', '.join(SUITE_PARAMETERS)}")
    return {"$PARAMETER": name}


def default_parameters(
    *, min_batch_rows: int, max_batch_rows: int, freshness_hours: float, today: dt.date
) -> dict[str, Any]:
    """Values for every suite parameter."""
    return {
        MIN_BATCH_ROWS: min_batch_rows,
        MAX_BATCH_ROWS: max_batch_rows,
        FRESHNESS_HOURS: freshness_hours,
        TODAY: today.isoformat(),
        MAX_RELEASE_YEAR: today.year + RELEASE_YEAR_LEAD_YEARS,
    }


def severity_of(expectation: Any) -> str:
    """The severity an expectation (or expectation configuration) was tagged with."""
    meta = getattr(expectation, "meta", None) or {}
    if meta.get(SEVERITY_META) in SEVERITIES:
        return str(meta[SEVERITY_META])
    native = getattr(expectation, "severity", FailureSeverity.CRITICAL)
    return FailureSeverity(native).value if native != FailureSeverity.INFO else WARNING


def _tag(expectation: Expectation, severity: str, note: str | None) -> Expectation:
    expectation.severity = FailureSeverity(severity)
    expectation.meta = {**(expectation.meta or {}), SEVERITY_META: severity}
    if note:
        expectation.notes = note
    return expectation


def critical(expectation: Expectation, note: str | None = None) -> Expectation:
    """Tag: a failure stops the pipeline."""
    return _tag(expectation, CRITICAL, note)


def warning(expectation: Expectation, note: str | None = None) -> Expectation:
    """Tag: a failure is reported, the pipeline goes on."""
    return _tag(expectation, WARNING, note)


def _percent(share: float) -> str:
    return f"{share * 100:g} %"


def tiered(
    make: Callable[..., Expectation], *, critical_share: float = CRITICAL_ROW_SHARE, **kwargs: Any
) -> list[Expectation]:
    """One row check as two expectations: a warning on any failing row, critical above a share.

    Both compute the same metric, which Great Expectations resolves once for the two.
    """
    return [
        critical(
            make(**kwargs, mostly=round(1 - critical_share, 6)),
            f"Critical: stops the pipeline when more than {_percent(critical_share)} of the batch's rows fail.",
        ),
        warning(make(**kwargs), "Warning: any failing row is reported; the pipeline goes on."),
    ]


def foreign_key_expectations(foreign_keys: Iterable[ForeignKey]) -> list[Expectation]:
    """Foreign keys resolvable: a warning above :data:`ORPHAN_WARNING_SHARE` of the batch's rows."""
    return [
        warning(
            gxe.ExpectColumnValuesToBeNull(
                column=fk.orphan_column,
                mostly=round(1 - ORPHAN_WARNING_SHARE, 6),
                meta={COLUMN_META: fk.column},
            ),
            f"{fk.column} must name a row of bronze.{fk.table}; late-arriving dimensions make this a warning "
            f"above {_percent(ORPHAN_WARNING_SHARE)} of the batch's rows.",
        )
        for fk in foreign_keys
    ]


def batch_health_expectations() -> list[Expectation]:
    """Row count of the batch within the configured band; the batch ingested recently."""
    return [
        warning(
            gxe.ExpectTableRowCountToBeBetween(min_value=parameter(MIN_BATCH_ROWS)),
            "Too few rows: the source sent nothing new.",
        ),
        critical(
            gxe.ExpectTableRowCountToBeBetween(max_value=parameter(MAX_BATCH_ROWS)),
            "Too many rows: a runaway source or a lost watermark.",
        ),
        warning(
            gxe.ExpectColumnMinToBeBetween(column=INGEST_AGE_HOURS, max_value=parameter(FRESHNESS_HOURS)),
            "Freshness: hours since the newest row of the batch was ingested (_ingested_at).",
        ),
    ]


def key_expectations(key: tuple[str, ...]) -> list[Expectation]:
    """Key not null and unique over the whole bronze table: always critical."""
    expectations: list[Expectation] = [
        critical(gxe.ExpectColumnValuesToNotBeNull(column=column), "A null key anywhere in the table is critical.")
        for column in key
    ]
    unique = (
        gxe.ExpectColumnValuesToBeUnique(column=key[0])
        if len(key) == 1
        else gxe.ExpectCompoundColumnsToBeUnique(column_list=list(key))
    )
    expectations.append(critical(unique, "A duplicate key anywhere in the table is critical."))
    return expectations


def quarantine_expectations() -> list[Expectation]:
    """Share of the batch's source rows sent to bronze.quarantine."""
    return tiered(
        gxe.ExpectColumnValuesToBeInSet,
        critical_share=QUARANTINE_CRITICAL_SHARE,
        column=QUARANTINED,
        value_set=[False],
    )


def build_suite(name: str, expectations: Iterable[Expectation]) -> gx.ExpectationSuite:
    """A suite that belongs to no Data Context yet (the gate adds it to its ephemeral one)."""
    wanted = list(expectations)
    # The constructor needs no active context (add_expectation does), but it only logs an
    # invalid expectation and drops it: refuse that instead.
    suite = gx.ExpectationSuite(name=name, expectations=wanted)
    if len(suite.expectations) != len(wanted):
        raise ValueError(f"suite {name}: {len(wanted) - len(suite.expectations)} expectation(s) are not valid")
    return suite


def build_table_suites(
    table: str,
    key: tuple[str, ...],
    foreign_keys: tuple[ForeignKey, ...],
    row_checks: Iterable[Expectation],
) -> TableSuites:
    """The three suites of a table from its own row checks plus the shared ones."""
    batch = [*row_checks, *foreign_key_expectations(foreign_keys), *batch_health_expectations()]
    return TableSuites(
        table=table,
        key=key,
        foreign_keys=foreign_keys,
        batch=build_suite(suite_name(table, BATCH_SCOPE), batch),
        table_level=build_suite(suite_name(table, TABLE_SCOPE), key_expectations(key)),
        quarantine=build_suite(suite_name(table, QUARANTINE_SCOPE), quarantine_expectations()),
    )
