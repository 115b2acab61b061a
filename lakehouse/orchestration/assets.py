"""The assets, checks and jobs of the code location; each calls what the CLI calls.

A Dagster run of the lakehouse is one writer, as a ``lakehouse pipeline`` run is: the
:class:`LakehouseRun` resource starts the services (the pipeline's ``up`` step) and takes both
writer locks (lakehouse/pipeline/lock.py) when the run begins, and holds them until it ends;
the definitions use the in-process executor, so that is once per run. A second writer (a CLI
command, another Dagster run) waits for the lock up to ``pipeline.lock_wait_seconds`` and then
fails naming the holder: the retry policy does not retry that (the holder may run for long).

Every run has a project run id (``ops.pipeline_runs.run_id``) made from the Dagster run's id:
``<UTC start>-<first 8 characters of the Dagster run id>``; every materialisation and check
carries it as ``lakehouse_run_id``, and the audit rows carry the Dagster run's id prefix.
"""

import contextlib
import datetime as dt
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from lakehouse.audit import RUNS_TABLE
from lakehouse.bronze.contracts import CONTRACTS, Contract
from lakehouse.config import Config, load_config
from lakehouse.modeling import publish, runner
from lakehouse.orchestration import manifest as dbt_manifest
from lakehouse.pipeline.context import Options, StepResult
from lakehouse.quality.results import DQ_RESULTS_TABLE
from lakehouse.quality.verdicts import PASSED, VERDICTS_TABLE
from lakehouse.serving.sql_client import run_query

GATE_CHECK = "quality_gate"
RUN_ID_KEY = "lakehouse_run_id"
WRITER_POOL = "lakehouse_writer"
PLAN_FILE = "transform-plan.json"


# -- the run: services, the writer lock, the project run id, output into Dagster's log --------


class LakehouseRun(dg.ConfigurableResource):
    """The lakehouse's services up and its writer locks held for the whole Dagster run."""

    wait_for_lock: bool = True
    scale: str = "small"  # what the sources step generates into empty local sources (as --scale)

    def config(self) -> Config:
        return load_config()

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["LakehouseRun"]:
        from lakehouse import services
        from lakehouse.pipeline.lock import writer_lock

        run = context.dagster_run
        if run is not None and run.is_finished:
            # `dagster job execute` builds the run's context once more after the run, to hand
            # back its outputs: nothing runs then, so no services and no lock.
            yield self
            return
        config = self.config()
        log = context.log.info if context.log else print
        started = services.up(config, report=log)
        if started:
            log(f"started {', '.join(started)}")
        with writer_lock(config, "dagster", wait=self.wait_for_lock, notify=log):
            yield self


def project_run_id(run_id: str, started_at: dt.datetime) -> str:
    """The project's run id of a Dagster run: same shape as ``audit.new_run_id``."""
    return f"{started_at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{run_id.replace('-', '')[:8]}"


def run_started_at(context: dg.OpExecutionContext) -> dt.datetime:
    record = context.instance.get_run_record_by_id(context.run_id)
    created = record.create_timestamp if record is not None else None
    return created.astimezone(dt.UTC) if created is not None else dt.datetime.now(dt.UTC)


def run_id_of(context: dg.OpExecutionContext) -> str:
    return project_run_id(context.run_id, run_started_at(context))


class LogWriter(io.TextIOBase):
    """A text stream whose lines go to Dagster's log (the CLI's progress lines, unchanged)."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self._log.info(line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._log.info(self._pending.rstrip())
        self._pending = ""

    def isatty(self) -> bool:
        return False


def _scalar(config: Config, sql: str) -> Any:
    rows = run_query(config, sql, etl=True).rows
    return rows[0][0] if rows else None


# -- sources and bronze: steps sources, extract and validate in one Spark application --------


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


def _step(results: Sequence[StepResult], name: str) -> StepResult | None:
    return next((r for r in results if r.name == name), None)


def table_rows(config: Config, run_id: str) -> dict[str, dict[str, Any]]:
    """This run's extract audit rows by table: rows read, written, quarantined, status."""
    result = run_query(
        config,
        "select source_table, rows_read, coalesce(rows_inserted, 0) + coalesce(rows_updated, 0), rows_quarantined, "
        f"status from {RUNS_TABLE} where run_id = '{run_id}' and step = 'extract' and source_table is not null",
        etl=True,
    )
    return {
        str(table): {"rows_read": read, "rows_written": written, "rows_quarantined": quarantined, "status": status}
        for table, read, written, quarantined, status in result.rows
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
        extract, validate = _step(outcome.results, "extract"), _step(outcome.results, "validate")
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


# -- dbt build (the *_build relations) and publish (silver and gold) --------------------------


class Translator(DagsterDbtTranslator):
    """dbt nodes keyed by the relation they build (``silver_build.x``, ``gold_build.x``); the
    dbt sources are the bronze assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["bronze", dbt_resource_props["identifier"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return str(dbt_resource_props["schema"])


def run_dir(config: Config, dagster_run_id: str) -> Path:
    """Where a Dagster run keeps dbt's target (manifest, run_results) for its publish step."""
    return config.home / "dbt" / "dagster" / "runs" / dagster_run_id


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` for the block (dagster-dbt passes os.environ to dbt)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dbt_build_assets(manifest_file: Path) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=manifest_file,
        dagster_dbt_translator=Translator(),
        name="dbt_build",
        exclude=runner.UNIT_TESTS,
        pool=WRITER_POOL,
    )
    def dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: LakehouseRun) -> Iterator[Any]:
        config = lakehouse.config()
        run_id = run_id_of(context)
        out = LogWriter(context.log)
        # A subset of the dbt assets is a partial build: never skipped, never recorded as a full one.
        select = "dagster subset" if set(context.selected_asset_keys) != set(context.assets_def.keys) else None
        plan = runner.plan_transform(config, select=select, run_id=run_id, out=out, err=out)
        out.flush()
        if isinstance(plan, int):
            raise dg.Failure("transform refused or could not plan (see the log above)", metadata={RUN_ID_KEY: run_id})
        target = run_dir(config, context.run_id)
        target.mkdir(parents=True, exist_ok=True)
        (target / PLAN_FILE).write_text(
            json.dumps(
                {
                    "skip": plan.skip,
                    "versions": plan.versions,
                    "project": plan.project,
                    "run_id": run_id,
                    "select": select,
                }
            )
        )
        if plan.skip:
            context.log.info(f"transform: {runner.SKIPPED}")
            return
        assert plan.command is not None
        args = plan.command[1:]  # the executable is the resource's
        with environment(dbt_manifest.environment_without_paths(config)):
            invocation = dbt.cli(args, context=context, target_path=target / "target", raise_on_error=False)
            yield from invocation.stream()
        if not invocation.is_successful():
            raise dg.Failure("dbt build failed: nothing is published (see the failed models and checks)")

    return dbt_build


def published_key(node: Mapping[str, Any]) -> dg.AssetKey:
    return dg.AssetKey([str(node["schema"]).removesuffix(publish.BUILD_SCHEMA_SUFFIX), node["name"]])


def publish_assets(manifest: Mapping[str, Any]) -> dg.AssetsDefinition:
    nodes = dbt_manifest.published_nodes(manifest)
    specs = [
        dg.AssetSpec(
            published_key(node),
            deps=[dg.AssetKey([node["schema"], node["name"]])],
            description=f"What analysts read: {node['schema']}.{node['name']} of the last build that passed.",
            skippable=True,
            group_name=str(node["schema"]).removesuffix(publish.BUILD_SCHEMA_SUFFIX),
            kinds={"spark", "view"},
        )
        for node in nodes
    ]

    @dg.multi_asset(
        name="publish",
        specs=specs,
        can_subset=False,
        pool=WRITER_POOL,
        description="Publish the build to silver and gold, only if every dbt node and test of the run passed.",
    )
    def publish_build(context: dg.AssetExecutionContext, lakehouse: LakehouseRun) -> Iterator[Any]:
        config = lakehouse.config()
        target = run_dir(config, context.run_id)
        plan_file = target / PLAN_FILE
        if not plan_file.exists():
            raise dg.Failure(f"no dbt build in this run to publish ({plan_file} is missing)")
        saved = json.loads(plan_file.read_text())
        if saved["skip"]:
            context.log.info("nothing to publish: the last published build read the same bronze")
            return
        results = target / "target" / runner.RUN_RESULTS_FILE
        built = publish.succeeded(json.loads(results.read_text())) if results.exists() else set()
        plan = runner.TransformPlan(saved["versions"], saved["project"], full_refresh=False)
        out = LogWriter(context.log)
        code = runner.conclude_transform(
            config,
            plan,
            0,
            results,
            target / "target",
            built=built,
            run_id=saved["run_id"],
            select=saved["select"],
            out=out,
            err=out,
        )
        out.flush()
        if code != runner.EXIT_OK:
            raise dg.Failure("publish failed: silver and gold keep the last build that passed (see the log)")
        for node in nodes:
            if node["unique_id"] in built:
                yield dg.MaterializeResult(asset_key=published_key(node), metadata={RUN_ID_KEY: saved["run_id"]})

    return publish_build


# -- maintain: a job of its own ---------------------------------------------------------------


@dg.op(description="Step maintain of `lakehouse pipeline`: OPTIMIZE and VACUUM by threshold.")
def maintain(context: dg.OpExecutionContext, lakehouse: LakehouseRun) -> None:
    from lakehouse.pipeline.run import execute

    out = LogWriter(context.log)
    outcome = execute(lakehouse.config(), Options(only="maintain"), out, run_id_of(context), locked=True)
    out.flush()
    if outcome.code != 0:
        failed = _step(outcome.results, "maintain")
        raise dg.Failure(f"maintain failed: {failed.detail if failed else 'see the log'}")
