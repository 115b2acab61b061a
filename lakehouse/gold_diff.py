"""`lakehouse gold save NAME` / `lakehouse gold diff NAME`: is gold exactly what it was?

A performance change must leave gold equal on the same sources. Before the change, ``save``
copies every table and view of ``gold`` into the schema ``gold_saved_<NAME>``; after it (same
sources, the changed code's full run), ``diff`` compares each relation with its copy row by
row, ``EXCEPT ALL`` in both directions (duplicates count), and names each relation that
differs with how many rows only one side has. Exit code 0 when every relation is equal.

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

    @property
    def equal(self) -> bool:
        return self.rows is not None and self.only_now == 0 and self.only_saved == 0

    def describe(self) -> str:
        if self.rows is None:
            return f"{self.relation}: missing from gold now (the copy has it)"
        if self.equal:
            return f"{self.relation}: equal ({_rows(self.rows)})"
        return (
            f"{self.relation}: DIFFERS: {_rows(self.only_now)} only in gold now, "
            f"{_rows(self.only_saved)} only in the saved copy ({_rows(self.rows)} now)"
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
        here, saved = f"{source}.{relation}", f"{target}.{relation}"
        differences.append(
            Difference(
                relation,
                _count(query, f"select * from {here}"),
                _count(query, f"select * from {here} except all select * from {saved}"),
                _count(query, f"select * from {saved} except all select * from {here}"),
            )
        )
    for relation in sorted(now - {d.relation for d in differences}):
        rows = _count(query, f"select * from {source}.{relation}")
        differences.append(Difference(f"{relation} (new, not in the copy)", rows, rows, 0))
    return differences


def report(differences: Sequence[Difference]) -> tuple[bool, str]:
    """(all equal, one line per relation and a verdict)."""
    equal = all(d.equal for d in differences)
    lines = [d.describe() for d in differences]
    lines.append(
        f"gold: all {len(differences)} relations equal, row for row"
        if equal
        else f"gold: {sum(not d.equal for d in differences)} of {len(differences)} relations differ"
    )
    return equal, "\n".join(lines)


def thrift_query(config: Config) -> Query:
    """Run each statement over the Thrift endpoint in an ETL session."""
    from lakehouse.serving.sql_client import run_query

    return lambda sql: [tuple(row) for row in run_query(config, sql, etl=True).rows]
