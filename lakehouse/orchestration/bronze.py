"""Sources and bronze: the pipeline's steps sources, extract and validate in one Spark
application, each bronze table an asset and the gate a blocking check on it."""

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from lakehouse.audit import RUNS_TABLE
from lakehouse.bronze.contracts import CONTRACTS, Contract
from lakehouse.orchestration.run import RUN_ID_KEY, WRITER_POOL, LakehouseRun, LogWriter, run_id_of, step_result
from lakehouse.pipeline.context import Options
from lakehouse.quality.results import DQ_RESULTS_TABLE
from lakehouse.quality.verdicts import PASSED, VERDICTS_TABLE
from lakehouse.serving.sql_client import QueryResult, newest_version, newest_version_sql, run_queries

GATE_CHECK = "quality_gate"


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


def table_rows_sql(run_id: str) -> str:
    """This run's extract audit rows by table (read by :func:`table_rows`)."""
    return (
        "select source_table, rows_read, coalesce(rows_inserted, 0) + coalesce(rows_updated, 0), rows_quarantined, "
        "(unix_micros(ended_at) - unix_micros(started_at)) / 1e6, status, profile "
        f"from {RUNS_TABLE} where run_id = '{run_id}' and step = 'extract' and source_table is not null"
    )


def table_rows(answer: QueryResult) -> dict[str, dict[str, Any]]:
    """Rows read, written, quarantined, seconds, the status and where the time went (the profile
    the summary prints, ``lakehouse profile``) by table, from the answer to :func:`table_rows_sql`."""
    return {
        str(table): {
            "rows_read": read,
            "rows_written": written,
            "rows_quarantined": quarantined,
            "seconds": seconds,
            "status": status,
            "profile": profile,
        }
        for table, read, written, quarantined, seconds, status, profile in answer.rows
    }


# Each table's newest verdict: this run's where it validated the table, else the one that covers
# what downstream reads.
GATE_VERDICTS_SQL = (
    "select source_table, verdict, bronze_version, rows_validated from (select *, row_number() over "
    f"(partition by source_table order by decided_at desc) as newest from {VERDICTS_TABLE}) where newest = 1"
)


def gate_verdicts(answer: QueryResult) -> dict[str, tuple[str, int | None, int | None]]:
    """(verdict, bronze version, rows validated) by table, from the answer to GATE_VERDICTS_SQL."""
    return {str(t): (str(v), version, rows) for t, v, version, rows in answer.rows}


def failed_expectations_sql(run_id: str) -> str:
    return (
        f"select table_name, coalesce(`column`, ''), expectation from {DQ_RESULTS_TABLE} "
        f"where run_id = '{run_id}' and not success and severity = 'critical'"
    )


def failed_expectations(answer: QueryResult) -> dict[str, list[str]]:
    """The critical expectations of this run that failed, by table (``column: expectation``),
    from the answer to :func:`failed_expectations_sql`."""
    failed: dict[str, list[str]] = {}
    for table, column, expectation in answer.rows:
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
        if validate is not None and validate.status == "failed" and not validate.gate_failed:
            raise dg.Failure(f"validate failed: {validate.detail}", metadata={RUN_ID_KEY: run_id})
        extracted = extract is not None and extract.status != "skipped"
        # What the materialisations and checks carry, in one Thrift session.
        queries = [newest_version_sql(c.table) for c in contracts]
        queries += [GATE_VERDICTS_SQL, failed_expectations_sql(run_id)]
        queries += [table_rows_sql(run_id)] if extracted else []
        answers = run_queries(config, queries, etl=True)
        versions = {c.source_name: newest_version(answer) for c, answer in zip(contracts, answers, strict=False)}
        verdicts, failed, *rows = answers[len(contracts) :]
        yield from bronze_materializations(contracts, table_rows(rows[0]) if rows else {}, versions, run_id)
        yield from gate_check_results(contracts, gate_verdicts(verdicts), failed_expectations(failed), run_id)

    return extract_and_validate
