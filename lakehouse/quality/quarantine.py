"""The operator's way past a failed gate: move the offending bronze rows to quarantine.

``lakehouse quarantine <table> --where "<SQL predicate>" --reason "<why>"`` moves the rows of
``bronze.<table>`` that match the predicate into ``bronze.quarantine`` (the whole bronze row as
JSON in ``payload``, the reason prefixed with "quarantined by an operator", a batch id of its
own) and deletes them from bronze, then records a ``quarantine`` step in ``ops.pipeline_runs``.
The next gate validates what is still pending without them; rows an operator moved do not count
in the quarantine share (they are a decision, not a defect the extract found).

When the gate failed on the share of rows the *extract* quarantined (values it could not
type), the rows are already in quarantine; fixing the source and re-extracting supersedes
them. Where the source cannot be fixed, ``--accept-quarantined --reason "<why>"`` records the
operator's decision on the table's pending quarantine rows instead: their reason gets the same
prefix (the extract's reason is kept after it), so they no longer count in the share.

It runs on the Thrift server (an etl session) under the pipeline's run lock. The quarantine
MERGE skips payloads already there, so a run cut off between its two commits is finished by
running it again. The extract leaves a moved version in quarantine when it reads it again (the
lookback window); a newer version of the record, or an edit at the source, arrives as usual.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lakehouse.audit import StepRecord, new_run_id, record_over_thrift
from lakehouse.bronze.contracts import CONTRACTS, OPERATOR_BATCH_PREFIX, QUARANTINE_TABLE, RECORD_JSON_OPTIONS
from lakehouse.config import Config
from lakehouse.errors import LakehouseError
from lakehouse.quality.verdicts import OPERATOR_REASON_PREFIX, PASSED, VERDICTS_TABLE
from lakehouse.serving.sql_client import run_queries, run_query, sql_literal

STEP = "quarantine"


class QuarantineError(LakehouseError, ValueError):
    """The command cannot do what was asked (unknown table, no reason, no matching row)."""


@dataclass(frozen=True)
class Moved:
    table: str
    rows: int
    batch_id: str
    run_id: str


def _check(table: str, reason: str) -> None:
    if table not in CONTRACTS:
        raise QuarantineError(f"no bronze table {table!r}: known tables are {', '.join(CONTRACTS)}")
    if not reason.strip():
        raise QuarantineError("--reason is required: say why the rows are quarantined (it is kept with them)")


def _record(
    config: Config, table: str, batch_id: str, started: dt.datetime, rows: int, detail: str, run_id: str
) -> None:
    """The command's row in ops.pipeline_runs (rows_read and rows_quarantined: the rows handled)."""
    contract = CONTRACTS[table]
    record = StepRecord(
        run_id,
        STEP,
        contract.source_system,
        contract.source_name,
        batch_id=batch_id,
        started_at=started,
        rows_read=rows,
        rows_quarantined=rows,
    )
    record_over_thrift(config, [record.finish("succeeded", detail)])


def _record_key_sql(table: str) -> str:
    """The bronze row's record key, as the extract writes it for a quarantined row."""
    parts = [f"cast({k} as string)" for k in CONTRACTS[table].key]
    return parts[0] if len(parts) == 1 else "concat_ws('|', " + ", ".join(f"coalesce({p}, '')" for p in parts) + ")"


def move_to_quarantine(
    config: Config,
    table: str,
    where: str,
    reason: str,
    *,
    run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Moved:
    """Move the rows of bronze.<table> matching ``where`` to bronze.quarantine; see the module."""
    report = progress or (lambda _message: None)
    _check(table, reason)
    if not where.strip():
        raise QuarantineError("--where is required: a SQL predicate on the bronze table's columns")
    contract = CONTRACTS[table]
    run_id = run_id or new_run_id()
    batch_id = f"{OPERATOR_BATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    started = dt.datetime.now(dt.UTC)
    matching = f"from {contract.table} where ({where})"
    count = int(run_query(config, f"select count(*) {matching}", etl=True).rows[0][0])
    if count == 0:
        raise QuarantineError(f"no row of {contract.table} matches {where!r}: nothing moved")
    report(f"quarantine: moving {count:,} row(s) of {contract.table} to {QUARANTINE_TABLE}...")
    full_reason = sql_literal(f"{OPERATOR_REASON_PREFIX}: {reason.strip()}")
    options = ", ".join(f"{sql_literal(k)}, {sql_literal(v)}" for k, v in RECORD_JSON_OPTIONS.items())
    payload = f"to_json(struct(*), map({options}))"
    *_writes, after = run_queries(
        config,
        [
            f"merge into {QUARANTINE_TABLE} t using ("
            f"select {sql_literal(contract.source_system)} as source_system, "
            f"{sql_literal(contract.source_name)} as source_table, {_record_key_sql(table)} as record_key, "
            f"{payload} as payload, {full_reason} as reason, sha2({payload}, 256) as payload_sha256, "
            f"{sql_literal(batch_id)} as batch_id, current_timestamp() as quarantined_at {matching}) s "
            "on t.source_system = s.source_system and t.source_table = s.source_table "
            "and t.payload_sha256 = s.payload_sha256 when not matched then insert *",
            f"delete {matching}",
            f"select count(*) {matching}",
        ],
        etl=True,
    )
    left = int(after.rows[0][0])
    if left:
        raise QuarantineError(f"{left:,} row(s) of {contract.table} still match {where!r} after the move")
    detail = f"{OPERATOR_REASON_PREFIX}: {reason.strip()} (where {where})"
    _record(config, table, batch_id, started, count, detail, run_id)
    report(f"quarantine: moved {count:,} row(s) of {contract.table} (batch {batch_id}, run {run_id})")
    return Moved(table, count, batch_id, run_id)


def accept_quarantined(
    config: Config,
    table: str,
    reason: str,
    *,
    run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Moved:
    """Mark the table's pending rows the extract quarantined as accepted by an operator."""
    report = progress or (lambda _message: None)
    _check(table, reason)
    contract = CONTRACTS[table]
    run_id = run_id or new_run_id()
    started = dt.datetime.now(dt.UTC)
    condition = (
        f"source_system = {sql_literal(contract.source_system)} and source_table = {sql_literal(contract.source_name)} "
        f"and not startswith(reason, {sql_literal(OPERATOR_REASON_PREFIX)})"
    )
    ops = {row[1] for row in run_query(config, "show tables in ops", etl=True).rows}
    if VERDICTS_TABLE.split(".")[1] in ops:
        # Delta's UPDATE takes no subquery: the high-water mark crosses as epoch microseconds.
        high_water = run_query(
            config,
            f"select unix_micros(max(high_water)) from {VERDICTS_TABLE} "
            f"where source_table = {sql_literal(table)} and verdict = '{PASSED}'",
            etl=True,
        ).rows[0][0]
        if high_water is not None:
            condition += f" and quarantined_at > timestamp_micros({int(high_water)})"
    count = int(run_query(config, f"select count(*) from {QUARANTINE_TABLE} where {condition}", etl=True).rows[0][0])
    if count == 0:
        raise QuarantineError(f"{table} has no pending row in {QUARANTINE_TABLE} to accept")
    prefix = sql_literal(f"{OPERATOR_REASON_PREFIX} (accepted: {reason.strip()}); extract: ")
    run_query(config, f"update {QUARANTINE_TABLE} set reason = concat({prefix}, reason) where {condition}", etl=True)
    batch_id = f"{OPERATOR_BATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    _record(config, table, batch_id, started, count, f"{OPERATOR_REASON_PREFIX}: accepted ({reason.strip()})", run_id)
    report(f"quarantine: accepted {count:,} pending quarantined row(s) of {contract.table} (run {run_id})")
    return Moved(table, count, batch_id, run_id)
