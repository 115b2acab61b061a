"""Sources and bronze: the pipeline's steps sources, extract and validate in one Spark
application, each bronze table an asset and the gate a blocking check on it."""

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from lakehouse.audit import RUNS_TABLE
from lakehouse.bronze.contracts import CONTRACTS, Contract
from lakehouse.config import Config
from lakehouse.orchestration.run import RUN_ID_KEY, WRITER_POOL, LakehouseRun, LogWriter, run_id_of, step_result
from lakehouse.pipeline.context import Options, StepResult
from lakehouse.quality.results import DQ_RESULTS_TABLE
from lakehouse.quality.verdicts import PASSED, VERDICTS_TABLE
from lakehouse.serving.sql_client import run_query

GATE_CHECK = "quality_gate"


def _scalar(config: Config, sql: str) -> Any:
    rows = run_query(config, sql, etl=True).rows
    return rows[0][0] if rows else None


def source_key(contract: Contract) -> dg.AssetKey:
    return dg.AssetKey(["sources", contract.source_system, contract.source_name])


def bronze_key(contract: Contract) -> dg.AssetKey:
    return dg.AssetKey(["bronze", contract.source_name])


def source_specs(contracts: Sequence[Contract] = tuple(CONTRACTS.values())) -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            source_key(c),
            description=f"The {c.source_system} table {c.source_name} (the source; read, never written).",
            group_name="sources",
            kinds={"postgres" if c.source_system == "postgres" else "mongodb"},
        )
        for c in contracts
    ]


def table_rows(config: Config, run_id: str) -> dict[str, dict[str, Any]]:
    """This run's extract audit rows by table: rows read, written, quarantined, seconds, the
    status and where the time went (the profile the summary prints, ``lakehouse profile``)."""
    result = run_query(
        config,
        "select source_table, rows_read, coalesce(rows_inserted, 0) + coalesce(rows_updated, 0), rows_quarantined, "
        "(unix_micros(ended_at) - unix_micros(started_at)) / 1e6, status, profile "
        f"from {RUNS_TABLE} where run_id = '{run_id}' and step = 'extract' and source_table is not null",
        etl=True,
    )
    return {
        str(table): {
            "rows_read": read,
            "rows_written": written,
            "rows_quarantined": quarantined,
            "seconds": seconds,
            "status": status,
            "profile": profile,
        }
        for table, read, written, quarantined, seconds, status, profile in result.rows
    }


def gate_verdicts(config: Config, run_id: str) -> dict[str, tuple[str, int | None, int | None]]:
    """This run's gate verdict per table (verdict, bronze version, rows validated); or, for a
    table this run did not validate, its newest verdict (what downstream reads is covered by)."""
    result = run_query(
        config,
        "select source_table, verdict, bronze_version, rows_validated from (select *, row_number() over "
        f"(partition by source_table order by decided_at desc) as newest from {VERDICTS_TABLE}) where newest = 1",
        etl=True,
    )
    return {str(t): (str(v), version, rows) for t, v, version, rows in result.rows}


def failed_expectations(config: Config, run_id: str) -> dict[str, list[str]]:
    """The critical expectations of this run that failed, by table (``column: expectation``)."""
    result = run_query(
        config,
        f"select table_name, coalesce(`column`, ''), expectation from {DQ_RESULTS_TABLE} "
        f"where run_id = '{run_id}' and not success and severity = 'critical'",
        etl=True,
    )
    failed: dict[str, list[str]] = {}
    for table, column, expectation in result.rows:
        failed.setdefault(str(table).removeprefix("bronze."), []).append(
            f"{column}: {expectation}" if column else expectation
        )
    return failed


def gate_check_results(
    contracts: Sequence[Contract],
    verdicts: Mapping[str, tuple[str, int | None, int | None]],
    failed: Mapping[str, list[str]],
    run_id: str,
) -> list[dg.AssetCheckResult]:
    """One blocking check result per bronze table from the gate's verdicts.

    A table without any verdict (never validated: no row ever reached it) passes with nothing
    checked: there is nothing downstream could read from it.
    """
    checks = []
    for contract in contracts:
        verdict, version, rows = verdicts.get(contract.source_name, (None, None, None))
        metadata: dict[str, Any] = {RUN_ID_KEY: run_id, "verdict": verdict or "none yet"}
        if version is not None:
            metadata["bronze_version"] = int(version)
        if rows is not None:
            metadata["rows_validated"] = int(rows)
        if failed.get(contract.source_name):
            metadata["failed_expectations"] = failed[contract.source_name]
        checks.append(
            dg.AssetCheckResult(
                asset_key=bronze_key(contract),
                check_name=GATE_CHECK,
                passed=verdict in (None, PASSED),
                metadata=metadata,
            )
        )
    return checks


def bronze_materializations(
    contracts: Sequence[Contract], rows: Mapping[str, Mapping[str, Any]], versions: Mapping[str, int], run_id: str
) -> list[dg.MaterializeResult]:
    """A materialisation of every bronze table, its Delta version as its data version.

    Every table, every run: the dbt build downstream must run whenever any table changed, or a
    transform is still owed (a build that failed before, a gate passed since); Dagster skips a
    step whose upstream output was skipped. A table this run did not write keeps its data
    version, so Dagster sees it unchanged; ``plan_transform`` decides whether dbt has work.
    """
    done = []
    for contract in contracts:
        table = rows.get(contract.source_name) or {}
        metadata: dict[str, Any] = {RUN_ID_KEY: run_id}
        metadata.update({k: int(table.get(k) or 0) for k in ("rows_read", "rows_written", "rows_quarantined")})
        if table.get("seconds") is not None:
            metadata["extract_seconds"] = round(float(table["seconds"]), 2)
        if table.get("profile"):
            metadata["profile"] = dg.MetadataValue.json(json.loads(table["profile"]))
        version = versions[contract.source_name]
        metadata["delta_version"] = version
        done.append(
            dg.MaterializeResult(
                asset_key=bronze_key(contract), metadata=metadata, data_version=dg.DataVersion(str(version))
            )
        )
    return done


def bronze_assets(contracts: Sequence[Contract] = tuple(CONTRACTS.values())) -> dg.AssetsDefinition:
    specs = [
        dg.AssetSpec(
            bronze_key(c),
            deps=[source_key(c)],
            description=f"Bronze copy of {c.source_system} {c.source_name}, one row per {', '.join(c.key)}.",
            group_name="bronze",
            kinds={"spark", "delta"},
        )
        for c in contracts
    ]
    checks = [
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset=bronze_key(c),
            blocking=True,
            description="The Great Expectations gate (expectations/): its verdict on what the run ingested.",
        )
        for c in contracts
    ]

    @dg.multi_asset(
        name="extract_and_validate",
        specs=specs,
        check_specs=checks,
        can_subset=False,
        pool=WRITER_POOL,
        description="Steps sources, extract and validate of `lakehouse pipeline`, in one Spark application.",
    )
    def extract_and_validate(context: dg.AssetExecutionContext, lakehouse: LakehouseRun) -> Iterator[Any]:
        from lakehouse.pipeline.run import execute
        from lakehouse.pipeline.steps import GATE_FAILED_MESSAGE

        config = lakehouse.config()
        run_id = run_id_of(context)
        outcome = execute(
            config,
            Options(from_step="sources", until="validate", scale=lakehouse.scale),
            LogWriter(context.log),
            run_id,
            locked=True,
        )
        extract, validate = step_result(outcome.results, "extract"), step_result(outcome.results, "validate")
        for result in outcome.results:
            if result.status == "failed" and result.name != "validate":
                raise dg.Failure(f"{result.name} failed: {result.detail}", metadata={RUN_ID_KEY: run_id})
        if validate is not None and validate.status == "failed" and not _gate_said_no(validate, GATE_FAILED_MESSAGE):
            raise dg.Failure(f"validate failed: {validate.detail}", metadata={RUN_ID_KEY: run_id})
        rows = table_rows(config, run_id) if extract is not None and extract.status != "skipped" else {}
        versions = {
            c.source_name: int(_scalar(config, f"describe history {c.table} limit 1"))  # column 1: version
            for c in contracts
        }
        yield from bronze_materializations(contracts, rows, versions, run_id)
        yield from gate_check_results(
            contracts, gate_verdicts(config, run_id), failed_expectations(config, run_id), run_id
        )

    return extract_and_validate


def _gate_said_no(validate: StepResult, failed_message: str) -> bool:
    """The validate step failed because the gate failed (now, or still on the same inputs)."""
    return validate.detail == failed_message or "still failed" in validate.detail
