"""Would the next extract find anything? Fingerprints of source windows, taken without Spark.

The extract of a table reads a window of its source: rows with ``updated_at`` at or after the
stored watermark minus ``bronze.lookback_minutes`` (late commits), plus MongoDB documents whose
``updated_at`` is not a date. Re-reading rows the last extract already wrote or quarantined
changes nothing, so the extract can be skipped when the window the next extract would read
holds exactly what the last extract read: same rows, same values (every field is hashed, since
an edit may keep ``updated_at``), and no row stamped ahead of the clock that has since become
due (such rows are quarantined until then).

A :class:`Fingerprint` is that window's row count, newest ``updated_at`` and an
order-independent digest of every row (the sum of the first 64 bits of each row's MD5), taken
by one query per table (psycopg2 / pymongo, the readers' own predicates). The extract job:

1. takes the fingerprint of the window it is about to read;
2. reads and commits the batch;
3. takes, in one scan, the fingerprints of that window again and of the next extract's window
   (from the watermark it is about to store);
4. stores the next window's fingerprint with the watermark, in the same commit, only if the
   first two are equal: then the source did not change while it read, and the next window's
   fingerprint describes rows that are all in bronze or quarantine. A table whose extract
   failed gets its fingerprint cleared.

The decision (:func:`pending_tables`) takes the fingerprint of the stored window again and
runs the extract for a table on any difference, when there is no fingerprint (a lakehouse built
before this, a failed extract), or when the window no longer matches the watermark and the
lookback. When in doubt, it says "run".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lakehouse.bronze import readers
from lakehouse.bronze.contracts import MONGODB, UPDATED_AT, Contract
from lakehouse.config import Config
from lakehouse.errors import LakehouseError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Every session renders rows the same way, whatever the server's or the client's defaults.
_POSTGRES_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3"
_DIGEST_BITS = 64
# What decides how a row read is typed, checked and written: another version may write or
# quarantine the same source rows differently, so a fingerprint taken by other code does not count.
_EXTRACT_MODULES = ("contracts.py", "extract.py", "readers.py", "transform.py", "writer.py")


def extract_code() -> str:
    """A fingerprint of the extract's code."""
    digest = hashlib.sha256()
    folder = Path(__file__).parent
    for name in _EXTRACT_MODULES:
        digest.update(name.encode() + (folder / name).read_bytes())
    return digest.hexdigest()[:16]


def micros(value: dt.datetime | None) -> int | None:
    """Microseconds since the epoch of an aware datetime (naive ones are UTC, as pymongo's)."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // dt.timedelta(microseconds=1)


def from_micros(value: int | None) -> dt.datetime | None:
    return None if value is None else _EPOCH + dt.timedelta(microseconds=value)


@dataclass(frozen=True)
class Fingerprint:
    """What a window of a source table held: the window starts at ``since_us`` (None: everything)."""

    since_us: int | None
    rows: int
    newest_us: int | None  # newest dated updated_at in the window
    digest: str  # sum of the first 64 bits of each row's MD5, in decimal
    horizon_us: int | None = None  # rows stamped after this were quarantined as future
    code: str | None = None  # the extract code that read it (extract_code())

    def same_rows(self, other: Fingerprint) -> bool:
        return (self.since_us, self.rows, self.newest_us, self.digest) == (
            other.since_us,
            other.rows,
            other.newest_us,
            other.digest,
        )

    def stamped(self, horizon: dt.datetime) -> Fingerprint:
        """This fingerprint as the extract stores it: with its clock horizon and its code."""
        return Fingerprint(self.since_us, self.rows, self.newest_us, self.digest, micros(horizon), extract_code())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Fingerprint | None:
        """The stored fingerprint, or None when there is none or it cannot be read."""
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None


# ---------------------------------------------------------------- taking fingerprints


def _postgres(config: Config, contract: Contract, windows: Sequence[dt.datetime | None]) -> list[Fingerprint]:
    """One scan of the widest window; each window's aggregates filtered from it."""
    digest = f"('x' || substr(md5(t::text), 1, 16))::bit({_DIGEST_BITS})::bigint::numeric"
    columns = []
    for since in windows:
        inside = readers.postgres_predicate(since)
        columns += [
            f"count(*) filter (where {inside})",
            f"(extract(epoch from max({UPDATED_AT}) filter (where {inside})) * 1000000)::bigint",
            f"coalesce(sum({digest}) filter (where {inside}), 0)::text",
        ]
    widest = None if any(s is None for s in windows) else min(s for s in windows if s is not None)
    query = (
        f"select {', '.join(columns)} from {readers.POSTGRES_SCHEMA}.{contract.source_name} t "
        f"where {readers.postgres_predicate(widest)}"
    )
    row = readers.postgres_row(config, contract, query, _POSTGRES_OPTIONS)
    return [
        Fingerprint(micros(since), int(row[3 * i]), row[3 * i + 1], row[3 * i + 2]) for i, since in enumerate(windows)
    ]


def _row_digest(text: str) -> int:
    return int.from_bytes(hashlib.md5(text.encode()).digest()[: _DIGEST_BITS // 8], "big", signed=True)


def _stamp_us(value: object) -> int | None:
    """A document's ``updated_at`` as epoch microseconds: a BSON date, or text Spark would read
    as a timestamp (ISO-8601; without an offset, UTC as the Spark session); else None."""
    if isinstance(value, dt.datetime):
        return micros(value)
    if isinstance(value, str):
        try:
            return micros(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _mongodb(
    config: Config, contract: Contract, windows: Sequence[dt.datetime | None], kept: list[str] | None = None
) -> list[Fingerprint]:
    """``kept``: filled with the first window's documents as JSON, up to one more than
    :data:`readers.DRIVER_READ_MAX_DOCUMENTS` (more tells the caller the window was too big)."""
    from lakehouse.services.mongodb import client

    widest = None if any(s is None for s in windows) else min(s for s in windows if s is not None)
    # BSON dates have milliseconds: the extract's filter truncates a window's start to one (pymongo).
    starts = [None if s is None else micros(s) // 1000 * 1000 for s in windows]

    def attempt() -> list[Fingerprint]:
        rows = [0] * len(windows)
        newest: list[int | None] = [None] * len(windows)
        sums = [0] * len(windows)
        if kept is not None:
            kept.clear()  # a retry starts over
        with client(config, readers.SERVER_SELECTION_TIMEOUT_MS) as mongo:
            collection = mongo[config.mongodb.database][readers.MONGO_COLLECTION_OF[contract.source_name]]
            query = readers.mongo_batch_filter(widest)
            for document in collection.find(query, batch_size=config.bronze.mongodb_batch_size):
                value = document.get(UPDATED_AT)
                dated = isinstance(value, dt.datetime)
                # A stamp in text is not a date to MongoDB, but Spark may read it as one: it
                # counts for the newest stamp (a text stamp ahead of the clock becomes due too).
                stamp_us = _stamp_us(value)
                text = readers.document_json(document)
                digest = _row_digest(text)
                for i, start in enumerate(starts):
                    # Undated documents are in every window (the extract reads them every time).
                    if not dated or start is None or stamp_us >= start:
                        rows[i] += 1
                        sums[i] += digest
                        if i == 0 and kept is not None and len(kept) <= readers.DRIVER_READ_MAX_DOCUMENTS:
                            kept.append(text)
                        if stamp_us is not None and (newest[i] is None or stamp_us > newest[i]):
                            newest[i] = stamp_us
        return [Fingerprint(micros(windows[i]), rows[i], newest[i], str(sums[i])) for i in range(len(windows))]

    return readers.with_retries(config, f"mongodb source {config.mongodb.display()}", attempt)


def take(config: Config, contract: Contract, windows: Sequence[dt.datetime | None]) -> list[Fingerprint]:
    """The fingerprint of each window (rows at or after its start; None: the whole table), in one read."""
    if contract.source_system == MONGODB:
        return _mongodb(config, contract, windows)
    return _postgres(config, contract, windows)


def take_with_documents(
    config: Config, contract: Contract, since: dt.datetime | None
) -> tuple[Fingerprint, list[str] | None]:
    """The fingerprint of one window and, for a MongoDB window of at most
    :data:`readers.DRIVER_READ_MAX_DOCUMENTS` documents, those documents as JSON: the extract
    reads its batch from them rather than asking the collection again (FerretDB answers each
    query in about the same time whatever it returns: 2.5-2.7 s at medium), and the batch is
    exactly what the fingerprint describes. None for a bigger window and for PostgreSQL."""
    if contract.source_system != MONGODB:
        return take(config, contract, [since])[0], None
    kept: list[str] = []
    (fingerprint,) = _mongodb(config, contract, [since], kept)
    return fingerprint, kept if len(kept) <= readers.DRIVER_READ_MAX_DOCUMENTS else None


def due_rows(config: Config, contract: Contract, after: dt.datetime, until: dt.datetime) -> int:
    """Rows stamped in (after, until]: ahead of the clock at the last extract, due by now."""
    if contract.source_system == MONGODB:
        from lakehouse.services.mongodb import client

        def count_documents() -> int:
            with client(config, readers.SERVER_SELECTION_TIMEOUT_MS) as mongo:
                collection = mongo[config.mongodb.database][readers.MONGO_COLLECTION_OF[contract.source_name]]
                naive = [moment.astimezone(dt.UTC).replace(tzinfo=None) for moment in (after, until)]
                dated = collection.count_documents({UPDATED_AT: {"$gt": naive[0], "$lte": naive[1]}})
                low, high = micros(after), micros(until)
                texts = (_stamp_us(d.get(UPDATED_AT)) for d in collection.find(readers.NOT_A_DATE, {UPDATED_AT: 1}))
                return dated + sum(1 for stamp in texts if stamp is not None and low < stamp <= high)

        return readers.with_retries(config, f"mongodb source {config.mongodb.display()}", count_documents)

    query = (
        f"select count(*) from {readers.POSTGRES_SCHEMA}.{contract.source_name} where "
        f"{UPDATED_AT} > timestamptz '{after.astimezone(dt.UTC).isoformat()}' and "
        f"{UPDATED_AT} <= timestamptz '{until.astimezone(dt.UTC).isoformat()}'"
    )
    return int(readers.postgres_row(config, contract, query)[0])


# ---------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Stored:
    """A table's row in ops.watermarks, as the decision reads it."""

    watermark_us: int
    fingerprint: Fingerprint | None


def next_window(watermark: dt.datetime | None, lookback_minutes: int) -> dt.datetime | None:
    """Where the next extract's window starts (None: the whole table)."""
    return None if watermark is None else watermark - dt.timedelta(minutes=lookback_minutes)


def reason_to_extract(config: Config, contract: Contract, stored: Stored | None, now: dt.datetime) -> str | None:
    """Why the next extract of this table may find something new, or None when it cannot."""
    if stored is None:
        return "never extracted"
    fingerprint = stored.fingerprint
    if fingerprint is None:
        return "no fingerprint of its last extract (it failed, or ran before fingerprints existed)"
    if fingerprint.code != extract_code():
        return "the extract's code changed since its last run"
    window = next_window(from_micros(stored.watermark_us), config.bronze.lookback_minutes)
    if fingerprint.since_us != micros(window):
        return "its window moved (watermark or bronze.lookback_minutes changed)"
    (current,) = take(config, contract, [window])
    if not current.same_rows(fingerprint):
        change = current.rows - fingerprint.rows
        counted = f"{abs(change):,} row(s) {'more' if change > 0 else 'fewer'}" if change else "rows changed"
        return f"its window changed since the last extract ({counted})"
    horizon = from_micros(fingerprint.horizon_us)
    if horizon is None:
        return "no clock horizon in its fingerprint"
    if fingerprint.newest_us is not None and fingerprint.newest_us > fingerprint.horizon_us:
        until = now + dt.timedelta(minutes=config.bronze.future_tolerance_minutes)
        due = due_rows(config, contract, horizon, until)
        if due:
            return f"{due:,} row(s) stamped ahead of the clock are now due"
    return None


def read_stored(config: Config) -> tuple[set[str], dict[tuple[str, str], Stored]]:
    """The bronze tables, and every table's stored watermark and fingerprint, read over the
    Thrift server (no Spark). A lakehouse without them yet has none."""
    from lakehouse.audit import OPS_SCHEMA
    from lakehouse.bronze.contracts import BRONZE_SCHEMA
    from lakehouse.bronze.watermarks import FINGERPRINT, WATERMARKS_TABLE
    from lakehouse.serving.sql_client import QueryError, run_query

    def tables_in(schema: str) -> set[str]:
        try:
            return {f"{schema}.{row[1]}" for row in run_query(config, f"show tables in {schema}", etl=True).rows}
        except QueryError as exc:
            if "SCHEMA_NOT_FOUND" not in str(exc):
                raise
            return set()

    existing = tables_in(BRONZE_SCHEMA)
    if WATERMARKS_TABLE not in tables_in(OPS_SCHEMA):
        return existing, {}
    marks = run_query(
        config,
        f"select source_system, source_table, unix_micros(watermark), {FINGERPRINT} from {WATERMARKS_TABLE}",
        etl=True,
    )
    return existing, {(s, t): Stored(int(mark), Fingerprint.from_json(fp)) for s, t, mark, fp in marks.rows}


class SourcesUnreachable(LakehouseError):
    """Some sources could not be reached (after the readers' retries) to take a fingerprint."""

    def __init__(self, pending: dict[str, str], unreachable: dict[str, str]) -> None:
        self.pending = pending  # the reachable tables that have something new, with why
        self.unreachable = unreachable  # "system.table" -> the readers' one-line error
        super().__init__("; ".join(f"{table}: {message}" for table, message in unreachable.items()))


def pending_tables(config: Config, contracts: Iterable[Contract], now: dt.datetime | None = None) -> dict[str, str]:
    """The tables whose next extract may find something new, each with why; {} when none can.

    A source the readers cannot reach (after ``bronze.source_retries``) raises
    :class:`SourcesUnreachable` once every table was asked, with what the others answered; the
    extract would fail on it the same way. Raises what the Thrift server raises: the caller
    then extracts everything.
    """
    now = now or dt.datetime.now(dt.UTC)
    existing, stored = read_stored(config)
    pending, unreachable = {}, {}
    for contract in contracts:
        mark = stored.get((contract.source_system, contract.source_name))
        if contract.table not in existing:
            reason: str | None = f"{contract.table} does not exist"
        else:
            try:
                reason = reason_to_extract(config, contract, mark, now)
            except readers.SourceUnavailable as exc:
                unreachable[f"{contract.source_system}.{contract.source_name}"] = str(exc)
                continue
        if reason is not None:
            pending[contract.source_name] = reason
    if unreachable:
        raise SourcesUnreachable(pending, unreachable)
    return pending
