"""The built-in SQL client: run a query over the Thrift endpoint (PyHive) and format the result.

When ``thrift.auth`` resolves to ``password`` the client logs in as ``thrift.user`` with the
configured password (SASL PLAIN, PyHive's ``auth="CUSTOM"``); otherwise as
``LAKEHOUSE_THRIFT_USER`` or the operating-system user, with no password. With ``thrift.ssl``
it connects over TLS and verifies the server's certificate (``thrift.ssl_ca`` or the system's
CA certificates) and host name. Every call to the server waits at most
``thrift.query_timeout_seconds``: a hung server gives one line naming it and its log.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import io
import json
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lakehouse.config import Config
from lakehouse.errors import LakehouseError

USER_ENV = "LAKEHOUSE_THRIFT_USER"
# What a refused SASL login looks like from PyHive (thrift_sasl's TTransportException).
LOGIN_REFUSED = re.compile(r"Bad status: [345]|Error validating the login|authentication", re.IGNORECASE)
# The operation state of a query the server cancelled at its time limit.
TIMED_OUT_STATE = "TIMEDOUT"
ERROR_PREFIXES = re.compile(r"^(org\.apache\.hive\.service\.cli\.HiveSQLException:\s*)?(Error running query:\s*)?")
FORMATS = ("table", "csv", "json")
TLS_PROBE_TIMEOUT_SECONDS = 10
# thrift logs a failed connect at ERROR level (one more line on the terminal, and for TLS
# without the reason); run_query reports it in one line itself.
for _name in ("thrift.transport.TSocket", "thrift.transport.TSSLSocket"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class QueryError(LakehouseError):
    """The query failed or the server could not be reached; one readable line."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def server_message(config: Config, exc: Exception) -> str:
    """The server's error in one line, without Java class prefixes; a cancelled BI query says why."""
    response = exc.args[0] if exc.args else None
    status = getattr(response, "status", None)
    message = getattr(status, "errorMessage", None) or str(exc)
    if TIMED_OUT_STATE in message or TIMED_OUT_STATE in str(exc):
        return (
            f"the Thrift server at {config.thrift.host}:{config.thrift.port} cancelled the query: it ran past "
            f"the session's time limit (thrift.bi_query_timeout_seconds, {config.thrift.bi_query_timeout_seconds} s "
            "unless the session set spark.sql.thriftServer.queryTimeout)"
        )
    first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return ERROR_PREFIXES.sub("", first).strip()


def session_user(config: Config) -> str:
    if config.thrift.auth_enabled:
        return config.thrift.user
    return os.environ.get(USER_ENV) or getpass.getuser()


def _tls_context(config: Config) -> ssl.SSLContext:
    """Verifies the server's certificate (thrift.ssl_ca, or the system's CAs) and host name."""
    return ssl.create_default_context(cafile=config.thrift.ssl_ca)


def _tls_transport(config: Config, user: str):
    """A SASL PLAIN transport over a TLS socket that verifies the certificate and host name."""
    from thrift.transport.TSSLSocket import TSSLSocket

    class TLSSocket(TSSLSocket):
        def close(self) -> None:
            # thrift's close() fails on a socket that never opened (a failed handshake).
            if self.handle is not None:
                super().close()

    thrift = config.thrift
    tls_socket = TLSSocket(
        thrift.host,
        thrift.port,
        ssl_context=_tls_context(config),
        server_hostname=thrift.host,
        # The context already checked the host name against the certificate.
        validate_callback=lambda _cert, _hostname: None,
    )
    return _sasl_plain(config, user, tls_socket)


def _plain_transport(config: Config, user: str):
    """SASL PLAIN over a plain socket, as PyHive builds it, but with thrift.query_timeout_seconds."""
    from thrift.transport.TSocket import TSocket

    return _sasl_plain(config, user, TSocket(config.thrift.host, config.thrift.port))


def _sasl_plain(config: Config, user: str, sock):
    """SASL PLAIN on a socket that waits at most thrift.query_timeout_seconds for any answer."""
    import thrift_sasl
    from pyhive.hive import get_installed_sasl

    thrift = config.thrift
    sock.setTimeout(thrift.query_timeout_seconds * 1000)
    # Without authentication the server takes any PLAIN password; PyHive sends "x" then too.
    password = thrift.password if thrift.auth_enabled else "x"
    return thrift_sasl.TSaslClientTransport(
        lambda: get_installed_sasl(host=thrift.host, sasl_auth="PLAIN", username=user, password=password),
        "PLAIN",
        sock,
    )


def connect(config: Config, database: str = "default", *, etl: bool = False):
    """A PyHive connection; every call to the server waits at most thrift.query_timeout_seconds.

    ``etl``: a session of the project's own work (the etl pool, no per-query limit on the
    server; see lakehouse/serving/pools.py) instead of a BI session.
    """
    from pyhive import hive

    from lakehouse.serving import pools

    user = session_user(config)
    transport = _tls_transport(config, user) if config.thrift.ssl else _plain_transport(config, user)
    configuration = pools.etl_session_configuration() if etl else None
    return hive.connect(thrift_transport=transport, username=user, database=database, configuration=configuration)


def _timed_out(exc: Exception) -> bool:
    """thrift reports a socket timeout as "timed out" or "read timeout", depending on where it hit."""
    text = str(exc).lower()
    return isinstance(exc, TimeoutError) or "timed out" in text or "timeout" in text


def _timeout_error(config: Config) -> QueryError:
    """One line for a server that did not answer in time: which server, which log, what to do."""
    thrift = config.thrift
    log = config.log_dir / "thrift.log"
    return QueryError(
        f"the Thrift server at {thrift.host}:{thrift.port} did not answer within {thrift.query_timeout_seconds} s "
        f"(thrift.query_timeout_seconds): it may hang (log: {log}); check `lakehouse status`, then "
        "`lakehouse down thrift && lakehouse up thrift`"
    )


def _tls_problem(config: Config) -> str | None:
    """Why a TLS handshake with the server fails (thrift does not say), or None."""
    thrift = config.thrift
    try:
        with (
            socket.create_connection((thrift.host, thrift.port), timeout=TLS_PROBE_TIMEOUT_SECONDS) as raw,
            _tls_context(config).wrap_socket(raw, server_hostname=thrift.host),
        ):
            return None
    except ssl.SSLError as exc:
        return " ".join(str(exc).split())
    except OSError:
        return None


def _connect_error(config: Config, exc: Exception) -> QueryError:
    """One line for a failed connection; never includes the password."""
    thrift = config.thrift
    address = f"{thrift.host}:{thrift.port}"
    text = " ".join(str(exc).split())
    if thrift.ssl and not isinstance(exc, ssl.SSLError):
        problem = _tls_problem(config)
        if problem:
            return QueryError(
                f"TLS with the Thrift server at {address} failed ({problem}): check thrift.ssl and thrift.ssl_ca"
            )
    if LOGIN_REFUSED.search(text):
        if thrift.auth_enabled:
            return QueryError(
                f"the Thrift server at {address} refused the login of user {thrift.user!r}: "
                "check LAKEHOUSE_THRIFT_PASSWORD (and thrift.user)"
            )
        return QueryError(
            f"the Thrift server at {address} requires a user name and password: "
            "set LAKEHOUSE_THRIFT_AUTH=password and LAKEHOUSE_THRIFT_PASSWORD"
        )
    if isinstance(exc, ssl.SSLError):
        return QueryError(
            f"TLS with the Thrift server at {address} failed ({text}): check thrift.ssl and thrift.ssl_ca"
        )
    return QueryError(f"cannot reach the Thrift server at {address} ({text}): is `lakehouse up` running?")


def sql_literal(value: object) -> str:
    """A Python value as a Spark SQL literal: null, an integer, a UTC timestamp, or a quoted string."""
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return f"timestamp'{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}'"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# Statements that only read: `lakehouse sql` runs them without the writer lock.
READ_ONLY_KEYWORDS = ("select", "show", "describe", "desc", "explain", "values", "list")
WRITE_KEYWORDS = re.compile(
    r"\b(insert|merge|update|delete|create|drop|alter|truncate|overwrite|replace|optimize|vacuum|restore|"
    r"msck|refresh|load|cache|uncache|analyze)\b",
    re.IGNORECASE,
)


def writes(query: str) -> bool:
    """Whether a statement may write the lakehouse (or change the session): anything but a plain
    read. A ``with`` query reads unless it names a write; when unsure, it counts as a write."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.DOTALL).strip().lstrip("(").lower()
    first = text.split(None, 1)[0] if text else ""
    if first in READ_ONLY_KEYWORDS:
        return False
    if first == "with":
        return WRITE_KEYWORDS.search(text) is not None
    return True


def run_query(config: Config, query: str, database: str = "default", *, etl: bool = False) -> QueryResult:
    """Run one statement in a session of its own; ``etl`` as in connect()."""
    return run_queries(config, [query], database, etl=etl)[0]


def run_queries(
    config: Config, queries: Sequence[str], database: str = "default", *, etl: bool = False
) -> list[QueryResult]:
    """Run statements one after the other in one session of their own; ``etl`` as in connect()."""
    with session(config, database, etl=etl) as run:
        return [run(query) for query in queries]


@contextlib.contextmanager
def session(config: Config, database: str = "default", *, etl: bool = False) -> Iterator[Callable[[str], QueryResult]]:
    """One Thrift session for statements that depend on each other's answers: yields a
    function that runs one statement and returns its result; errors as in run_query()."""
    from pyhive.exc import Error as HiveError
    from thrift.transport.TTransport import TTransportException

    address = f"{config.thrift.host}:{config.thrift.port}"
    try:
        connection = connect(config, database, etl=etl)
    except (TTransportException, OSError, EOFError) as exc:
        raise (_timeout_error(config) if _timed_out(exc) else _connect_error(config, exc)) from None
    cursor = connection.cursor()

    def run(query: str) -> QueryResult:
        try:
            cursor.execute(query)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchall() if cursor.description else []
        except HiveError as exc:
            raise QueryError(server_message(config, exc)) from None
        except (TTransportException, OSError) as exc:
            if _timed_out(exc):
                raise _timeout_error(config) from None
            raise QueryError(f"lost the connection to the Thrift server at {address}: {exc}") from None
        return QueryResult(columns, [tuple(r) for r in rows])

    try:
        yield run
    finally:
        with contextlib.suppress(TTransportException, OSError):
            connection.close()


def newest_version_sql(table: str) -> str:
    """SQL whose one row has the table's newest Delta version (see :func:`newest_version`)."""
    return f"describe history {table} limit 1"


def newest_version(result: QueryResult) -> int:
    """The version in the answer to :func:`newest_version_sql`."""
    return int(result.rows[0][result.columns.index("version")])


def schema_listing_sql(schema: str) -> list[str]:
    """The two statements whose answers :func:`table_names` reads."""
    return [f"show tables in {schema}", f"show views in {schema}"]


def table_names(listed: QueryResult, views: QueryResult) -> list[str]:
    """The schema's tables, not its views, sorted: Spark's SHOW TABLES lists views too, so the
    names SHOW VIEWS does not list (the answers to :func:`schema_listing_sql`)."""
    return sorted({str(row[1]) for row in listed.rows} - {str(row[1]) for row in views.rows})


def delta_versions(config: Config, schemas: Sequence[str]) -> dict[str, int]:
    """The newest Delta version of every table (not view) of the schemas, over the Thrift server."""
    versions = {}
    for schema in schemas:
        tables = [f"{schema}.{name}" for name in table_names(*run_queries(config, schema_listing_sql(schema)))]
        histories = run_queries(config, [newest_version_sql(t) for t in tables]) if tables else []
        versions.update({t: newest_version(h) for t, h in zip(tables, histories, strict=True)})
    return versions


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
