"""Great Expectations suites as code, one module per bronze table.

``build_all()`` returns every table's :class:`~expectations.common.TableSuites` (a ``batch``,
a ``table`` and a ``quarantine`` suite), in the order the gate validates them. Severities and
the thresholds policy are described in :mod:`expectations.common`. A leaf: it imports Great
Expectations and its own constants, nothing of ``lakehouse``.
"""

from __future__ import annotations

import os

# Great Expectations' usage analytics off, before anything here imports great_expectations (this
# package imports nothing of the lakehouse: code that needs GE imports it after this package).
os.environ["GX_ANALYTICS_ENABLED"] = "false"

from types import ModuleType

from expectations import content, ratings, users, viewing_sessions
from expectations.common import TableSuites

MODULES: dict[str, ModuleType] = {m.TABLE: m for m in (users, content, viewing_sessions, ratings)}
TABLES: tuple[str, ...] = tuple(MODULES)


def build_all(tables: list[str] | tuple[str, ...] | None = None) -> dict[str, TableSuites]:
    """The suites of the named bronze tables (all by default); an unknown name fails clearly."""
    selected = list(tables) if tables is not None else list(TABLES)
    unknown = [t for t in selected if t not in MODULES]
    if unknown:
        raise ValueError(f"no expectation suites for bronze table {unknown[0]!r}: known are {', '.join(TABLES)}")
    return {t: MODULES[t].build() for t in selected}
