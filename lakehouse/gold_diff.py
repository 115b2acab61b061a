"""`lakehouse gold save NAME` / `lakehouse gold diff NAME`: is gold exactly what it was?

A performance change must leave gold equal on the same sources. Before the change, ``save``
copies every table and view of ``gold`` into the schema ``gold_saved_<NAME>``; after it (same
sources, the changed code's full run), ``diff`` compares each relation with its copy row by
row, ``EXCEPT ALL`` in both directions (duplicates count), and names each relation that
differs with how many rows only one side has. Exit code 0 when every relation is equal.

Floating-point columns (``double``, ``float``) are the one allowance: a sum or a standard
deviation over the same rows read in another order (files laid out differently after an
incremental run than after a full one) can differ in its last binary digits. A relation whose
rows differ only there is compared again with those columns at ``SIGNIFICANT_DIGITS`` digits
(``format_string('%.Ne')``: relative, whatever the magnitude) and reported as equal to that
precision, with how many rows differ beyond it; anything else (an integer, a string, a date, a
double off by more) is a difference. Rounding puts two values a last bit apart on either side of
a rounding boundary now and then (...4999999 and ...5000001); a relation that is not equal at
``SIGNIFICANT_DIGITS`` is tried once more at one digit less, whose boundaries lie elsewhere,
and the report says to how many digits it is equal.

Columns of :data:`RUN_CLOCK_COLUMNS` (``_ingested_at``: when the extract read a row) are not
compared: two loads of the same sources differ there on every row, as they must.

    lakehouse gold save before          # on main, after a full run
    ...                                 # the change, the same sources, a full run
    lakehouse gold diff before          # equal: 0, different: 1 and one line per relation

The copies are plain tables in the warehouse; ``lakehouse sql "drop database gold_saved_before
cascade"`` removes them. Everything runs over the Thrift endpoint, as an ETL session.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lakehouse.config import Config
from lakehouse.errors import LakehouseError

GOLD = "gold"
SAVED_PREFIX = "gold_saved_"
SIGNIFICANT_DIGITS = 12
FLOATING = ("double", "float")
# Columns that say when a run read the rows, not what it computed from them: two loads of the
# same sources differ there on every row (fct_viewing_sessions._ingested_at), so they are not
# compared, and the report says so.
RUN_CLOCK_COLUMNS = ("_ingested_at",)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,40}")

Query = Callable[[str], list[tuple]]


class GoldDiffError(LakehouseError):
    """A save or a comparison could not be made (bad name, nothing saved under it)."""


@dataclass(frozen=True)
class Difference:
    """One relation of gold against its saved copy."""

    relation: str
    rows: int | None  # rows now (None: the relation is gone)
    only_now: int  # rows now that the copy lacks (EXCEPT ALL: duplicates count)
    only_saved: int  # rows of the copy that gold no longer has
    # rows (each side) that differ only beyond SIGNIFICANT_DIGITS digits of a floating-point column
    rounding_only: int = 0
    not_compared: tuple[str, ...] = ()  # RUN_CLOCK_COLUMNS the relation has
    digits: int = SIGNIFICANT_DIGITS  # the precision of a rounding_only equality

    @property
    def equal(self) -> bool:
        return self.rows is not None and self.only_now == 0 and self.only_saved == 0

    def describe(self) -> str:
        if self.rows is None:
            return f"{self.relation}: missing from gold now (the copy has it)"
        skipped = f"; {', '.join(self.not_compared)} not compared" if self.not_compared else ""
        if self.equal and self.rounding_only:
            return (
                f"{self.relation}: equal to {self.digits} significant digits ({_rows(self.rows)}; "
                f"{_rows(self.rounding_only)} differing beyond that in a floating-point column{skipped})"
            )
        if self.equal:
            return f"{self.relation}: equal ({_rows(self.rows)}{skipped})"
        return (
            f"{self.relation}: DIFFERS: {_rows(self.only_now)} only in gold now, "
            f"{_rows(self.only_saved)} only in the saved copy ({_rows(self.rows)} now{skipped})"
        )


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def saved_schema(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise GoldDiffError(f"gold: the name {name!r} must be lower-case letters, digits and _ (a schema name)")
    return SAVED_PREFIX + name


def relations(query: Query, schema: str) -> list[str]:
    """The tables and views of a schema, sorted (Spark's SHOW TABLES: database, name, is temporary)."""
    return sorted(str(row[1]) for row in query(f"show tables in {schema}") if not row[2])


def save(query: Query, name: str, source: str = GOLD) -> list[str]:
    """Copy every relation of ``source`` into ``gold_saved_<name>``, replacing an earlier copy."""
    target = saved_schema(name)
    names = relations(query, source)
    if not names:
        raise GoldDiffError(f"gold: {source} has no table: run the pipeline first")
    query(f"drop database if exists {target} cascade")
    query(f"create database {target}")
    for relation in names:
        query(f"create table {target}.{relation} as select * from {source}.{relation}")
    return names


def _count(query: Query, sql: str) -> int:
    return int(query(f"select count(*) from ({sql}) as rows")[0][0])


def _columns(query: Query, relation: str) -> list[tuple[str, str]]:
    """(name, type) of a relation's columns (DESCRIBE: name, type, comment; until a blank or # row)."""
    columns = []
    for row in query(f"describe {relation}"):
        name = str(row[0] or "")
        if not name or name.startswith("#"):
            break
        columns.append((name, str(row[1]).lower()))
    return columns


def _selected(relation: str, columns: list[tuple[str, str]], *, digits: int | None = None) -> str:
    """A select of the relation's columns; with ``digits``, its floating-point columns rounded
    to that many significant digits."""
    shown = [
        f"format_string('%.{digits - 1}e', `{name}`) as `{name}`" if digits and kind in FLOATING else f"`{name}`"
        for name, kind in columns
    ]
    return f"select {', '.join(shown)} from {relation}"


def _relation_difference(query: Query, relation: str, here: str, saved: str) -> Difference:
    described = _columns(query, here)
    columns = [(name, kind) for name, kind in described if name not in RUN_CLOCK_COLUMNS]
    skipped = tuple(name for name, _ in described if name in RUN_CLOCK_COLUMNS)
    here_rows, saved_rows = _selected(here, columns), _selected(saved, columns)
    rows = _count(query, here_rows)
    only_now = _count(query, f"{here_rows} except all {saved_rows}")
    only_saved = _count(query, f"{saved_rows} except all {here_rows}")
    if not (only_now or only_saved) or not any(kind in FLOATING for _, kind in columns):
        return Difference(relation, rows, only_now, only_saved, not_compared=skipped)
    for digits in (SIGNIFICANT_DIGITS, SIGNIFICANT_DIGITS - 1):
        here_rounded, saved_rounded = _selected(here, columns, digits=digits), _selected(saved, columns, digits=digits)
        rounded_now = _count(query, f"{here_rounded} except all {saved_rounded}")
        rounded_saved = _count(query, f"{saved_rounded} except all {here_rounded}")
        if not (rounded_now or rounded_saved):
            rounding_only = max(only_now, only_saved)
            return Difference(relation, rows, 0, 0, rounding_only, not_compared=skipped, digits=digits)
    return Difference(relation, rows, only_now, only_saved, not_compared=skipped)


def compare(query: Query, name: str, source: str = GOLD) -> list[Difference]:
    """Each saved relation against the same relation of ``source`` now, and relations new since."""
    target = saved_schema(name)
    if target not in {str(row[0]) for row in query("show databases")}:
        raise GoldDiffError(f"gold: nothing saved as {name!r}: run `lakehouse gold save {name}` first")
    now = set(relations(query, source))
    differences: list[Difference] = []
    for relation in relations(query, target):
        if relation not in now:
            differences.append(Difference(relation, None, 0, 0))
            continue
        differences.append(_relation_difference(query, relation, f"{source}.{relation}", f"{target}.{relation}"))
    for relation in sorted(now - {d.relation for d in differences}):
        rows = _count(query, f"select * from {source}.{relation}")
        differences.append(Difference(f"{relation} (new, not in the copy)", rows, rows, 0))
    return differences


def report(differences: Sequence[Difference]) -> tuple[bool, str]:
    """(all equal, one line per relation and a verdict)."""
    equal = all(d.equal for d in differences)
    lines = [d.describe() for d in differences]
    rounded = sum(d.equal and d.rounding_only > 0 for d in differences)
    digits = min((d.digits for d in differences if d.equal and d.rounding_only > 0), default=SIGNIFICANT_DIGITS)
    precision = f" ({rounded} to {digits} significant digits of a floating-point column)" if rounded else ""
    lines.append(
        f"gold: all {len(differences)} relations equal, row for row{precision}"
        if equal
        else f"gold: {sum(not d.equal for d in differences)} of {len(differences)} relations differ"
    )
    return equal, "\n".join(lines)


def thrift_query(config: Config) -> Query:
    """Run each statement over the Thrift endpoint in an ETL session."""
    from lakehouse.serving.sql_client import run_query

    return lambda sql: [tuple(row) for row in run_query(config, sql, etl=True).rows]
