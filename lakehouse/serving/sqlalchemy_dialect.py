"""PyHive's SQLAlchemy dialect, fixed for the Spark Thrift Server: ``hive+lakehouse://``.

PyHive's ``hive://`` dialect lists tables with ``SHOW TABLES`` and takes the first column of
each row. Hive returns one column, the table name; Spark returns ``namespace, tableName,
isTemporary``, so ``get_table_names('gold')`` answered ``['gold', 'gold', ...]`` and Superset's
table picker showed the schema name once per table. It also reported every table as a view.

This subclass reads the table name from Spark's rows, keeps views apart (``SHOW VIEWS``) and
leaves out temporary views, which belong to one session. Everything else is PyHive's. The
dialect is registered as the SQLAlchemy entry point ``hive.lakehouse`` (pyproject.toml), so

    hive+lakehouse://127.0.0.1:10000/gold
    hive+lakehouse://lakehouse:<password>@host:10000/gold?auth=CUSTOM

work wherever the ``lakehouse`` package is installed (Superset: install it next to Superset).
The backend name stays ``hive``, so tools that pick behaviour by backend (Superset's Hive and
Spark engine specs) treat it as before.
"""

from __future__ import annotations

from typing import Any

from pyhive import hive
from pyhive.sqlalchemy_hive import HiveDialect
from sqlalchemy import text

# SHOW TABLES / SHOW VIEWS on Spark: namespace, tableName (viewName), isTemporary.
SPARK_COLUMNS = 3


class LakehouseHiveDialect(HiveDialect):
    """``hive+lakehouse://``: PyHive with Spark's table listing."""

    name = "hive"
    driver = "lakehouse"
    supports_statement_cache = False

    @classmethod
    def import_dbapi(cls) -> Any:
        # Defined here too: SQLAlchemy 2 warns about PyHive's old dbapi() otherwise.
        return hive

    def _listing(self, connection: Any, statement: str, schema: str | None) -> list[tuple[str, bool]]:
        """(name, is_temporary) per row of SHOW TABLES / SHOW VIEWS, on Spark or Hive."""
        query = statement
        if schema:
            query += " IN " + self.identifier_preparer.quote_identifier(schema)
        rows = connection.execute(text(query)).fetchall()
        if rows and len(rows[0]) >= SPARK_COLUMNS:
            return [(row[1], str(row[2]).lower() == "true") for row in rows]
        return [(row[0], False) for row in rows]

    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return [name for name, temporary in self._listing(connection, "SHOW VIEWS", schema) if not temporary]

    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        views = set(self.get_view_names(connection, schema, **kw))
        listed = self._listing(connection, "SHOW TABLES", schema)
        return [name for name, temporary in listed if not temporary and name not in views]
