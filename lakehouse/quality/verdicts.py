"""The gate's verdict per bronze table, and what a passed one covers (``ops.gate_verdicts``).

A verdict is stored per table each time the gate validates what is *pending* in it: every row
ingested (``_ingested_at``) or quarantined (``quarantined_at``) after the high-water mark of the
table's last passed verdict, however many extracts brought them. A passed verdict's
``high_water`` is the newest of those times it saw, so it covers the table up to there; a failed
one covers nothing, and the same rows are pending (and validated again) on the next run until
they are fixed at the source and re-extracted, or moved to quarantine by an operator
(``lakehouse quarantine``).

``transform`` reads bronze only when no row is pending: :func:`pending_rows_sql` counts them
over the Thrift server, and dbt's staging models read each table ``VERSION AS OF`` the version
that was checked (the ``bronze_versions`` var).

Each gate run also stores its inputs with its verdicts (the bronze and quarantine versions it
read, and a fingerprint of its rules): when the newest gate failed and none of them changed
since, the pipeline reports "gate still failed" without starting Spark to fail again.

This module has no Spark import: the transform step (a Thrift client) uses its SQL too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict

from lakehouse.audit import OPS_SCHEMA
from lakehouse.config import PROJECT_ROOT, Config

VERDICTS_TABLE = f"{OPS_SCHEMA}.gate_verdicts"
PASSED = "passed"
FAILED = "failed"
# The reason of a row an operator moved to quarantine (`lakehouse quarantine`): a decision, not
# a defect the extract found, so it does not count in the quarantine share.
OPERATOR_REASON_PREFIX = "quarantined by an operator"


def covered_condition(table: str, column: str) -> str:
    """SQL: true for the rows of ``table`` whose ``column`` (a time) a passed verdict covers.

    False when no verdict passed yet: a table never validated has everything pending.
    """
    high_water = (
        f"(select max(high_water) from {VERDICTS_TABLE} where source_table = '{table}' and verdict = '{PASSED}')"
    )
    return f"coalesce({column} <= {high_water}, false)"


def pending_rows_sql(table: str, bronze_table: str, version: int, *, verdicts_exist: bool) -> str:
    """SQL: how many rows of ``bronze_table`` at ``version`` no passed verdict covers."""
    pending = f"not {covered_condition(table, '_ingested_at')}" if verdicts_exist else "true"
    return f"select count(*) from {bronze_table} version as of {version} where {pending}"


def pending_quarantined_sql(table: str, quarantine_table: str, source_system: str, source_name: str) -> str:
    """SQL: how many of the table's quarantine rows no passed verdict covers (the gate checks
    their share of the batch: a batch whose rows were all quarantined is pending too)."""
    return (
        f"select count(*) from {quarantine_table} where source_system = '{source_system}' "
        f"and source_table = '{source_name}' and not {covered_condition(table, 'quarantined_at')}"
    )


def last_verdict_sql(table: str) -> str:
    """SQL: the table's newest verdict (verdict, run_id), if any."""
    return (
        f"select verdict, run_id from {VERDICTS_TABLE} where source_table = '{table}' order by decided_at desc limit 1"
    )


# The state a gate validated, stored with its verdicts: a failed gate whose inputs are all
# unchanged would fail again, so the pipeline says so without starting Spark.
INPUTS_COLUMN = "inputs"
RULE_SOURCES = ("expectations", "lakehouse/quality")


def rules_fingerprint(config: Config, today: dt.date | None = None) -> str:
    """What the gate's outcome depends on besides the data: the quality settings, the code of the
    suites and the gate, and the date (some expectations compare with today)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(config.quality), sort_keys=True).encode())
    digest.update(str(today or dt.datetime.now(dt.UTC).date()).encode())
    for folder in RULE_SOURCES:
        for path in sorted((PROJECT_ROOT / folder).glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def gate_inputs(bronze_versions: dict[str, int], quarantine_version: int | None, rules: str) -> str:
    """The inputs of one gate run as stored JSON: bronze and quarantine versions, the rules."""
    return json.dumps(
        {"bronze_versions": bronze_versions, "quarantine_version": quarantine_version, "rules": rules}, sort_keys=True
    )


def newest_gate_run_sql() -> str:
    """SQL: the verdicts (verdict, run_id, inputs) of the newest gate run that stored any."""
    return (
        f"select verdict, run_id, {INPUTS_COLUMN} from {VERDICTS_TABLE} where run_id = "
        f"(select run_id from {VERDICTS_TABLE} order by decided_at desc limit 1)"
    )


def still_failed_run(newest_run: list[tuple], current_inputs: str) -> str | None:
    """The run id when the newest gate run failed and its stored inputs equal the current ones."""
    run_id, changes = failed_run_changes(newest_run, current_inputs)
    return run_id if run_id is not None and not changes else None


def failed_run_changes(newest_run: list[tuple], current_inputs: str) -> tuple[str | None, list[str]]:
    """The newest gate run's id when it failed (else None), and what changed among its inputs
    since (empty: nothing did, it would fail again), each change named for the operator."""
    if not newest_run or all(verdict == PASSED for verdict, _run, _inputs in newest_run):
        return None, []
    run_id = newest_run[0][1]
    stored = {inputs for _verdict, _run, inputs in newest_run}
    if len(stored) != 1 or None in stored:
        return run_id, ["its inputs were not stored"]
    before, now = json.loads(stored.pop()), json.loads(current_inputs)
    changes = [
        f"bronze.{table} version {before['bronze_versions'].get(table)} -> {version}"
        for table, version in sorted(now["bronze_versions"].items())
        if before["bronze_versions"].get(table) != version
    ]
    if before["quarantine_version"] != now["quarantine_version"]:
        changes.append(f"the quarantine version {before['quarantine_version']} -> {now['quarantine_version']}")
    if before["rules"] != now["rules"]:
        changes.append("the rules (quality settings, suites, gate code or the UTC day)")
    return run_id, changes
