"""The built-in SQL client: run a query over the Thrift endpoint (PyHive) and format the result."""

from __future__ import annotations

import csv
import getpass
import io
import json
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lakehouse.config import Config

USER_ENV = "LAKEHOUSE_THRIFT_USER"
ERROR_PREFIXES = re.compile(r"^(org\.apache\.hive\.service\.cli\.HiveSQLException:\s*)?(Error running query:\s*)?")
FORMATS = ("table", "csv", "json")


class QueryError(RuntimeError):
    """The query failed or the server could not be reached; one readable line."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _server_message(exc: Exception) -> str:
    """The server's own error text, first line only, without Java class prefixes."""
    response = exc.args[0] if exc.args else None
    status = getattr(response, "status", None)
    message = getattr(status, "errorMessage", None) or str(exc)
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return ERROR_PREFIXES.sub("", first).strip()


def connect(config: Config, database: str = "default"):
    from pyhive import hive

    user = os.environ.get(USER_ENV) or getpass.getuser()
    return hive.connect(host=config.thrift.host, port=config.thrift.port, username=user, database=database)


def run_query(config: Config, query: str, database: str = "default") -> QueryResult:
    from pyhive.exc import Error as HiveError
    from thrift.transport.TTransport import TTransportException

    address = f"{config.thrift.host}:{config.thrift.port}"
    try:
        connection = connect(config, database)
    except (TTransportException, OSError) as exc:
        raise QueryError(f"cannot reach the Thrift server at {address} ({exc}): is `lakehouse up` running?") from None
    try:
        cursor = connection.cursor()
        cursor.execute(query)
        columns = [d[0] for d in cursor.description] if cursor.description else []
        rows = cursor.fetchall() if cursor.description else []
        return QueryResult(columns, [tuple(r) for r in rows])
    except HiveError as exc:
        raise QueryError(_server_message(exc)) from None
    except (TTransportException, OSError) as exc:
        raise QueryError(f"lost the connection to the Thrift server at {address}: {exc}") from None
    finally:
        connection.close()


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def format_result(result: QueryResult, fmt: str = "table") -> str:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(["" if v is None else v for v in row] for row in result.rows)
        return out.getvalue().rstrip("\n")
    if fmt == "json":
        return json.dumps(
            [{c: _json_value(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows], indent=2
        )
    if not result.columns:
        return "OK"
    cells = [[_text(v) for v in row] for row in result.rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    header = "| " + " | ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)) + " |"
    body = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in cells]
    count = f"({len(cells)} row{'s' if len(cells) != 1 else ''})"
    return "\n".join([line, header, line, *body, line, count])
