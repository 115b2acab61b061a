"""Load the generated source files into PostgreSQL and MongoDB (``lakehouse load-sources``).

Targets::

    users.csv             -> PostgreSQL <postgres.database>.public.users
    viewing_sessions.csv  -> PostgreSQL <postgres.database>.public.viewing_sessions
    ratings.csv           -> PostgreSQL <postgres.database>.public.ratings
    content.jsonl         -> MongoDB <mongodb.database>.content

Why the source DDL has no primary keys
--------------------------------------
The generator injects the defects real sources have (see :mod:`lakehouse.sources.generate`):
rows with a null key, a second row for the same key, birth dates and start times that are
not dates. They must land in the source, because coping with them is the pipeline's job. So
the tables carry **no PRIMARY KEY, UNIQUE, NOT NULL or CHECK constraint on natural keys or on
defect-prone columns**: key uniqueness is enforced by the bronze MERGE (newest ``updated_at``
wins) and checked by the quality gate. Each table has a plain (non-unique) B-tree index on its
natural key (``user_id``; ``session_id``; ``(user_id, content_id)``) and one on ``updated_at``,
which the incremental extract filters on. ``updated_at`` is ``NOT NULL``: the generator always
writes it, and a row without it would be invisible to every incremental read.

Columns that the legacy application keeps as free text stay ``text`` so malformed values load
as they are: ``users.birth_date`` (``not-a-date``, ``1985-02-30``) and
``viewing_sessions.started_at``/``ended_at`` (device-reported ISO-8601 strings, some
unparseable). Every other column is typed; the generator writes nothing into a typed column that
PostgreSQL rejects (``signup_date`` is always a valid date, ``rated_at`` and every
``updated_at`` are valid timestamps, ``watch_seconds`` stays within ``integer``).

Loading
-------
CSV files are streamed into ``COPY ... FROM STDIN WITH (FORMAT csv, HEADER true, FREEZE true)``
(an empty unquoted field is NULL), one transaction per table that creates the table, copies,
builds the indexes, records the load and runs ANALYZE. The file's sha256 is computed while it
streams and must match ``manifest.json``, as must the row count, or the transaction rolls back.
``content.jsonl`` is inserted in batches (``insert_many(ordered=False)``) into a staging
collection that is renamed to ``content`` when complete, so a crash never leaves half a
collection behind. ``added_at`` and ``updated_at`` become BSON dates (UTC) where they are
ISO-8601 timestamps; malformed ones stay strings, as defects the pipeline must quarantine. Only
commands FerretDB v1 supports are used.

Idempotency
-----------
Every load is recorded with the file's sha256 from the manifest: in ``public.load_log`` (one row
per table) and in the ``_load_log`` collection (one document, ``_id: "content"``). A table whose
log entry has the same sha256 is skipped without reading the file, so loading the same files
twice is a no-op that returns at once, also after ``simulate`` moved the sources on. Loading
*different* files over loaded ones, or over rows that load-sources did not write, is refused
with a message that points at ``--replace``, which drops the source tables, the collection and
their logs (and the simulation clock) and loads from scratch. A session advisory lock keeps two
loads (or a load and a simulation) from running at once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg2
from bson.codec_options import CodecOptions
from psycopg2 import sql
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from lakehouse import errors
from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.services import mongodb, postgres
from lakehouse.services.process import ServiceError
from lakehouse.sources.schema import (
    CONTENT_COLLECTION,
    CONTENT_FILE,
    MANIFEST_FILE,
    SCHEMA,
    TABLES,
    TableSpec,
)

Progress = Callable[[str], None]

LOAD_LOG_TABLE = "load_log"
SIM_CLOCK_TABLE = "sim_clock"  # written by lakehouse.sources.simulate; dropped by replace
CONTENT_STAGING_COLLECTION = "content__loading"
MONGO_LOAD_LOG_COLLECTION = "_load_log"
CONTENT_LOG_ID = "content"

COPY_READ_BYTES = 1 << 20
MONGO_BATCH_DOCUMENTS = 1_000
MONGO_DUPLICATE_KEY_CODE = 11000
# Any 64-bit constant: the session advisory lock shared by load-sources and simulate.
SOURCES_LOCK_KEY = 0x1A4E_5057_C0DE

ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
MONGO_DATE_FIELDS = ("added_at", "updated_at")
UTC_CODEC = CodecOptions(tz_aware=True, tzinfo=UTC)


class SourceLoadError(LakehouseError, ValueError):
    """Bad input or a refused load; the message names the file, table or record."""


LOAD_LOG_DDL = """
create table if not exists {schema}.{table} (
    target text primary key,
    file_name text not null,
    sha256 text not null,
    rows_loaded bigint not null,
    source_path text not null,
    loaded_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class LoadResult:
    """What happened to one target: rows written (0 when skipped) and the time it took."""

    target: str
    file: str
    rows: int
    seconds: float
    skipped: bool


@dataclass(frozen=True)
class _FileEntry:
    """A data file as listed in manifest.json."""

    path: Path
    rows: int
    sha256: str


# --------------------------------------------------------------------------- public API


def load_sources(
    config: Config, data_dir: Path, *, replace: bool = False, progress: Callable[[str], None] = print
) -> dict[str, int]:
    """Create source schemas, load the generated files; return rows now in each source table/collection.

    Idempotent: files already loaded (same sha256) are skipped. ``replace=True`` drops the
    source tables, the content collection, their load logs and the simulation clock first.
    Raises :class:`SourceLoadError` (a ValueError) naming the file, table or record on bad
    input, :class:`~lakehouse.services.process.ServiceError` when a server cannot be reached.
    """
    counts, _ = load_sources_timed(config, data_dir, replace=replace, progress=progress)
    return counts


def load_sources_timed(
    config: Config, data_dir: Path, *, replace: bool = False, progress: Progress = print
) -> tuple[dict[str, int], list[LoadResult]]:
    """:func:`load_sources`, also returning what was loaded and how long each target took."""
    files = read_manifest(Path(data_dir))
    for spec in TABLES:
        check_csv_header(files[spec.file].path, spec)
    results: list[LoadResult] = []
    conn = postgres.connect(config, config.postgres.database)
    try:
        with sources_lock(conn, "load-sources"):
            if replace:
                drop_postgres_sources(conn)
                progress(f"postgres: dropped the source tables in {config.postgres.display()}")
            ensure_load_log(conn)
            for spec in TABLES:
                results.append(_load_table(conn, spec, files[spec.file], progress))
            with mongo_database(config) as database:
                if replace:
                    drop_mongo_sources(database)
                    progress(f"mongodb: dropped the content collection in {config.mongodb.display()}")
                results.append(_load_content(database, files[CONTENT_FILE], progress))
                counts = {spec.name: _count_rows(conn, spec.name) for spec in TABLES}
                counts[CONTENT_COLLECTION] = database[CONTENT_COLLECTION].count_documents({})
    except psycopg2.Error as exc:
        raise ServiceError(f"postgres: {config.postgres.display()}: {_pg_message(exc)}") from None
    except PyMongoError as exc:
        raise ServiceError(f"mongodb: {config.mongodb.display()}: {errors.first_line(exc)}") from None
    finally:
        conn.close()
    return counts, results


def sources_empty(config: Config) -> bool:
    """True when a source table or the content collection does not exist or holds no rows.

    ``make pipeline`` uses this to decide whether to generate and load the sources; a partly
    loaded source counts as empty, and the (idempotent) load completes it.
    """
    conn = postgres.connect(config, config.postgres.database)
    try:
        with conn.cursor() as cur:
            for spec in TABLES:
                if not _table_exists(cur, spec.name):
                    return True
                cur.execute(sql.SQL("select exists (select 1 from {})").format(_ident(spec.name)))
                if not cur.fetchone()[0]:
                    return True
        conn.rollback()
    except psycopg2.Error as exc:
        raise ServiceError(f"postgres: {config.postgres.display()}: {_pg_message(exc)}") from None
    finally:
        conn.close()
    try:
        with mongo_database(config) as database:
            return database[CONTENT_COLLECTION].count_documents({}, limit=1) == 0
    except PyMongoError as exc:
        raise ServiceError(f"mongodb: {config.mongodb.display()}: {errors.first_line(exc)}") from None


# --------------------------------------------------------------------------- input checks


def read_manifest(data_dir: Path) -> dict[str, _FileEntry]:
    """The four data files of ``data_dir`` with rows and sha256 from its manifest.json."""
    if not data_dir.is_dir():
        raise SourceLoadError(f"{data_dir}: not a directory with generated files (run `lakehouse generate`)")
    manifest_path = data_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise SourceLoadError(f"{manifest_path}: missing (run `lakehouse generate --out {data_dir}`)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed = manifest["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise SourceLoadError(f"{manifest_path}: not a generator manifest ({exc.__class__.__name__})") from None
    entries: dict[str, _FileEntry] = {}
    for name in (*(spec.file for spec in TABLES), CONTENT_FILE):
        info = listed.get(name) if isinstance(listed, dict) else None
        if not isinstance(info, dict) or not isinstance(info.get("rows"), int) or not info.get("sha256"):
            raise SourceLoadError(f"{manifest_path}: no rows/sha256 entry for {name}")
        path = data_dir / name
        if not path.is_file():
            raise SourceLoadError(f"{path}: missing (listed in {MANIFEST_FILE})")
        entries[name] = _FileEntry(path=path, rows=int(info["rows"]), sha256=str(info["sha256"]))
    return entries


def check_csv_header(path: Path, spec: TableSpec) -> None:
    """Raise SourceLoadError unless the CSV header names exactly the table's columns."""
    with path.open(newline="", encoding="utf-8") as handle:
        try:
            header = next(csv.reader(handle), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceLoadError(f"{path}: line 1: unreadable CSV header ({exc})") from None
    if not header:
        raise SourceLoadError(f"{path}: empty file, expected a header naming the columns of {spec.qualified}")
    if sorted(header) != sorted(spec.column_names) or len(header) != len(spec.column_names):
        missing = [c for c in spec.column_names if c not in header]
        extra = [c for c in header if c not in spec.column_names]
        raise SourceLoadError(
            f"{path}: header does not match {spec.qualified}: missing {missing or 'none'}, unexpected {extra or 'none'}"
        )


# --------------------------------------------------------------------------- PostgreSQL


@contextmanager
def sources_lock(conn: Any, command: str) -> Iterator[None]:
    """Hold the session advisory lock that serialises load-sources and simulate.

    Raises SourceLoadError at once when another load or simulation holds it; ``command``
    names the caller in that message.
    """
    with conn.cursor() as cur:
        cur.execute("select pg_try_advisory_lock(%s)", (SOURCES_LOCK_KEY,))
        acquired = cur.fetchone()[0]
    conn.commit()
    if not acquired:
        raise SourceLoadError(
            f"{command}: another load-sources or simulate is running against these sources; try again later"
        )
    try:
        yield
    finally:
        if not conn.closed:
            try:
                conn.rollback()
                with conn.cursor() as cur:
                    cur.execute("select pg_advisory_unlock(%s)", (SOURCES_LOCK_KEY,))
                conn.commit()
            except psycopg2.Error:
                pass  # the lock goes with the session, which the caller closes


def _ident(name: str) -> sql.Composed:
    """``public.<name>`` as a safely quoted identifier."""
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def _table_exists(cur: Any, name: str) -> bool:
    """True when ``public.<name>`` exists."""
    cur.execute("select to_regclass(%s) is not null", (f"{SCHEMA}.{name}",))
    return bool(cur.fetchone()[0])


def _count_rows(conn: Any, name: str) -> int:
    """Rows in ``public.<name>`` (0 when the table does not exist)."""
    with conn.cursor() as cur:
        if not _table_exists(cur, name):
            result = 0
        else:
            cur.execute(sql.SQL("select count(*) from {}").format(_ident(name)))
            result = int(cur.fetchone()[0])
    conn.rollback()
    return result


def drop_postgres_sources(conn: Any) -> None:
    """Drop the source tables, the load log and the simulation clock, in one transaction."""
    with conn.cursor() as cur:
        for name in (*(spec.name for spec in TABLES), LOAD_LOG_TABLE, SIM_CLOCK_TABLE):
            cur.execute(sql.SQL("drop table if exists {}").format(_ident(name)))
    conn.commit()


def ensure_load_log(conn: Any) -> None:
    """Create ``public.load_log`` if it does not exist."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL(LOAD_LOG_DDL).format(schema=sql.Identifier(SCHEMA), table=sql.Identifier(LOAD_LOG_TABLE)))
    conn.commit()


def create_table_sql(spec: TableSpec) -> sql.Composed:
    """``create table public.<name> (...)`` for a source table."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in spec.columns
    )
    return sql.SQL("create table {} ({})").format(_ident(spec.name), columns)


def create_indexes_sql(spec: TableSpec) -> list[sql.Composed]:
    """The non-unique indexes of a source table: natural key and updated_at."""
    statements = []
    for suffix, columns in (("key", spec.key), ("updated_at", ("updated_at",))):
        statements.append(
            sql.SQL("create index {} on {} ({})").format(
                sql.Identifier(f"{spec.name}_{suffix}_idx"),
                _ident(spec.name),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
            )
        )
    return statements


def _logged(cur: Any, target: str) -> tuple[str, str, datetime] | None:
    """(sha256, source_path, loaded_at) of the load recorded for ``target``, if any."""
    cur.execute(
        sql.SQL("select sha256, source_path, loaded_at from {} where target = %s").format(_ident(LOAD_LOG_TABLE)),
        (target,),
    )
    row = cur.fetchone()
    return None if row is None else (row[0], row[1], row[2])


def _refuse_other_file(target: str, entry: _FileEntry, logged: tuple[str, str, Any]) -> SourceLoadError:
    """The error for loading a different file over a loaded target."""
    sha, path, loaded_at = logged
    when = f", loaded {loaded_at:%Y-%m-%d %H:%M}" if isinstance(loaded_at, datetime) else ""
    return SourceLoadError(
        f"{entry.path}: {target} already holds {Path(path).name} from {Path(path).parent} "
        f"(sha256 {sha[:12]}{when}), not this file "
        f"(sha256 {entry.sha256[:12]}); pass --replace (replace=True) to reload from scratch"
    )


class _HashingReader:
    """A binary file wrapper that hashes and counts bytes as COPY reads them."""

    def __init__(self, handle: IO[bytes]) -> None:
        """Wrap an open binary file."""
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        """Read, hash and return the next block."""
        block = self._handle.read(size)
        self.digest.update(block)
        return block

    def readline(self, size: int = -1) -> bytes:
        """Read, hash and return the next line (psycopg2 may call either)."""
        line = self._handle.readline(size)
        self.digest.update(line)
        return line

    def finish(self) -> str:
        """Hash what COPY did not read (nothing, normally) and return the hex digest."""
        while block := self._handle.read(COPY_READ_BYTES):
            self.digest.update(block)
        return self.digest.hexdigest()


def _load_table(conn: Any, spec: TableSpec, entry: _FileEntry, progress: Progress) -> LoadResult:
    """Load one CSV into its table in one transaction, unless the same file is already in."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        logged = _logged(cur, spec.qualified)
        if logged is not None:
            conn.rollback()
            if logged[0] != entry.sha256:
                raise _refuse_other_file(spec.qualified, entry, logged)
            progress(f"{spec.file}: already loaded into {spec.qualified} ({entry.rows:,} rows), skipped")
            return LoadResult(spec.qualified, spec.file, 0, time.perf_counter() - started, skipped=True)
        if _table_exists(cur, spec.name):
            cur.execute(sql.SQL("select count(*) from {}").format(_ident(spec.name)))
            present = int(cur.fetchone()[0])
            if present:
                conn.rollback()
                raise SourceLoadError(
                    f"{spec.qualified}: holds {present:,} rows that load-sources did not load (no entry in "
                    f"{SCHEMA}.{LOAD_LOG_TABLE}); pass --replace (replace=True) to drop and reload"
                )
        header = _header(entry.path)
        try:
            cur.execute(sql.SQL("drop table if exists {}").format(_ident(spec.name)))
            cur.execute(create_table_sql(spec))
            copy = sql.SQL("copy {} ({}) from stdin with (format csv, header true, freeze true)").format(
                _ident(spec.name), sql.SQL(", ").join(map(sql.Identifier, header))
            )
            with entry.path.open("rb") as handle:
                reader = _HashingReader(handle)
                cur.copy_expert(copy.as_string(conn), reader, size=COPY_READ_BYTES)
                digest = reader.finish()
            rows = cur.rowcount
        except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
            conn.rollback()
            raise SourceLoadError(f"{entry.path}: {spec.qualified} rejected a row: {_pg_message(exc)}") from None
        if digest != entry.sha256:
            conn.rollback()
            raise SourceLoadError(
                f"{entry.path}: sha256 {digest[:12]} differs from {MANIFEST_FILE} ({entry.sha256[:12]}); "
                "the file changed after it was generated"
            )
        if rows != entry.rows:
            conn.rollback()
            raise SourceLoadError(f"{entry.path}: copied {rows:,} rows, {MANIFEST_FILE} says {entry.rows:,}")
        for statement in create_indexes_sql(spec):
            cur.execute(statement)
        cur.execute(
            sql.SQL(
                "insert into {} (target, file_name, sha256, rows_loaded, source_path) values (%s, %s, %s, %s, %s)"
            ).format(_ident(LOAD_LOG_TABLE)),
            (spec.qualified, spec.file, entry.sha256, rows, str(entry.path.resolve())),
        )
        cur.execute(sql.SQL("analyze {}").format(_ident(spec.name)))
    conn.commit()
    seconds = time.perf_counter() - started
    progress(f"{spec.file}: {rows:,} rows -> {spec.qualified} in {seconds:.1f} s ({_rate(rows, seconds)} rows/s)")
    return LoadResult(spec.qualified, spec.file, rows, seconds, skipped=False)


def _header(path: Path) -> list[str]:
    """Column names from the first line of a CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def _pg_message(exc: psycopg2.Error) -> str:
    """One line from a PostgreSQL error: the message and, for COPY, the line and column."""
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag is not None else None) or str(exc).strip().splitlines()[0]
    context = diag.context if diag is not None else None
    if context:
        return f"{primary} ({context.strip().splitlines()[0]})"
    return primary


def _rate(rows: int, seconds: float) -> str:
    """Rows per second, formatted."""
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


# --------------------------------------------------------------------------- MongoDB


@contextmanager
def mongo_database(config: Config) -> Iterator[Database]:
    """The configured source database, reading dates as tz-aware UTC; closes the client after."""
    client = mongodb.client(config)
    try:
        yield client.get_database(config.mongodb.database, codec_options=UTC_CODEC)
    finally:
        client.close()


def drop_mongo_sources(database: Database) -> None:
    """Drop the content collection, its staging collection and its load log entry."""
    database.drop_collection(CONTENT_COLLECTION)
    database.drop_collection(CONTENT_STAGING_COLLECTION)
    database[MONGO_LOAD_LOG_COLLECTION].delete_one({"_id": CONTENT_LOG_ID})


def parse_timestamp(value: object) -> datetime | None:
    """An ISO-8601 timestamp with a zone (``2026-01-03T10:15:00Z``) as UTC datetime, else None."""
    if not isinstance(value, str) or not ISO_TIMESTAMP.match(value):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def to_mongo_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document with parseable added_at/updated_at as datetimes; malformed ones kept as text."""
    for name in MONGO_DATE_FIELDS:
        parsed = parse_timestamp(document.get(name))
        if parsed is not None:
            document[name] = parsed
    return document


def _read_documents(path: Path, digest: Any) -> Iterator[list[dict[str, Any]]]:
    """Batches of documents from a JSON Lines file; hashes the bytes as it reads."""
    batch: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            digest.update(line)
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SourceLoadError(f"{path}: line {number}: not a JSON document ({exc})") from None
            if not isinstance(document, dict):
                raise SourceLoadError(f"{path}: line {number}: expected a JSON object, got {type(document).__name__}")
            batch.append(to_mongo_document(document))
            if len(batch) >= MONGO_BATCH_DOCUMENTS:
                yield batch
                batch = []
    if batch:
        yield batch


def _load_content(database: Database, entry: _FileEntry, progress: Progress) -> LoadResult:
    """Load content.jsonl into the content collection via a staging collection."""
    started = time.perf_counter()
    target = f"{database.name}.{CONTENT_COLLECTION}"
    log = database[MONGO_LOAD_LOG_COLLECTION]
    logged = log.find_one({"_id": CONTENT_LOG_ID})
    if logged is not None:
        if logged.get("sha256") != entry.sha256:
            raise _refuse_other_file(
                target, entry, (str(logged.get("sha256")), str(logged.get("source_path")), logged.get("loaded_at"))
            )
        progress(f"{entry.path.name}: already loaded into {target} ({entry.rows:,} documents), skipped")
        return LoadResult(target, entry.path.name, 0, time.perf_counter() - started, skipped=True)
    present = database[CONTENT_COLLECTION].count_documents({}, limit=1)
    if present:
        raise SourceLoadError(
            f"{target}: holds documents that load-sources did not load (no entry in {MONGO_LOAD_LOG_COLLECTION}); "
            "pass --replace (replace=True) to drop and reload"
        )
    database.drop_collection(CONTENT_STAGING_COLLECTION)  # left over by an interrupted load
    staging = database[CONTENT_STAGING_COLLECTION]
    digest = hashlib.sha256()
    rows = 0
    for batch in _read_documents(entry.path, digest):
        try:
            staging.insert_many(batch, ordered=False)
        except BulkWriteError as exc:
            first = exc.details.get("writeErrors", [{}])[0]
            kind = "duplicate _id" if first.get("code") == MONGO_DUPLICATE_KEY_CODE else first.get("errmsg", "")
            database.drop_collection(CONTENT_STAGING_COLLECTION)
            raise SourceLoadError(
                f"{entry.path}: document {batch[first.get('index', 0)].get('_id')!r} rejected by {target}: {kind}"
            ) from None
        rows += len(batch)
    if digest.hexdigest() != entry.sha256:
        database.drop_collection(CONTENT_STAGING_COLLECTION)
        raise SourceLoadError(
            f"{entry.path}: sha256 {digest.hexdigest()[:12]} differs from {MANIFEST_FILE} ({entry.sha256[:12]}); "
            "the file changed after it was generated"
        )
    if rows != entry.rows:
        database.drop_collection(CONTENT_STAGING_COLLECTION)
        raise SourceLoadError(f"{entry.path}: read {rows:,} documents, {MANIFEST_FILE} says {entry.rows:,}")
    staging.create_index("updated_at", name="updated_at_idx")
    # The target is empty or absent (checked above); FerretDB v1 lacks renameCollection's dropTarget.
    database.drop_collection(CONTENT_COLLECTION)
    staging.rename(CONTENT_COLLECTION)
    log.replace_one(
        {"_id": CONTENT_LOG_ID},
        {
            "_id": CONTENT_LOG_ID,
            "file_name": entry.path.name,
            "sha256": entry.sha256,
            "rows_loaded": rows,
            "source_path": str(entry.path.resolve()),
            "loaded_at": datetime.now(UTC),
        },
        upsert=True,
    )
    seconds = time.perf_counter() - started
    progress(f"{entry.path.name}: {rows:,} documents -> {target} in {seconds:.1f} s ({_rate(rows, seconds)} docs/s)")
    return LoadResult(target, entry.path.name, rows, seconds, skipped=False)


__all__ = [
    "LoadResult",
    "SourceLoadError",
    "load_sources",
    "load_sources_timed",
    "mongo_database",
    "parse_timestamp",
    "sources_empty",
]
