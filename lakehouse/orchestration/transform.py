"""dbt build (the ``*_build`` relations, dagster-dbt) and publish (the silver and gold views),
with the CLI's plan, command and conclusion (lakehouse/modeling/runner.py)."""

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from lakehouse.config import Config
from lakehouse.modeling import publish, runner
from lakehouse.orchestration import manifest as dbt_manifest
from lakehouse.orchestration.run import RUN_ID_KEY, WRITER_POOL, LakehouseRun, LogWriter, run_id_of

PLAN_FILE = "transform-plan.json"


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
            results = target / "target" / runner.RUN_RESULTS_FILE
            failed, _warned = runner.read_run_results(results) if results.exists() else ([], [])
            names = ", ".join(node.name for node in failed)
            if failed and all(node.is_transient for node in failed):
                # What `lakehouse transform` retries: the Thrift server's connection was lost.
                raise dg.RetryRequested(
                    max_retries=config.pipeline.step_retries, seconds_to_wait=config.pipeline.retry_backoff_seconds
                )
            raise dg.Failure(f"dbt build failed ({names or 'see its log'}): nothing is published")

    return dbt_build


def published_key(node: Mapping[str, Any]) -> dg.AssetKey:
    return dg.AssetKey([str(node["schema"]).removesuffix(publish.BUILD_SCHEMA_SUFFIX), node["name"]])


def published_materializations(
    nodes: Sequence[Mapping[str, Any]], built: set[str], publication: publish.Publication | None, run_id: str
) -> list[dg.MaterializeResult]:
    """A materialisation of each published view this run built; a table's view says which Delta
    version of its build table it pins (what analysts read until the next publish)."""
    done = []
    for node in nodes:
        if node["unique_id"] not in built:
            continue
        metadata: dict[str, Any] = {RUN_ID_KEY: run_id}
        version = publication.versions.get(node["unique_id"]) if publication else None
        if version is not None:
            metadata["delta_version"] = version
        done.append(dg.MaterializeResult(asset_key=published_key(node), metadata=metadata))
    return done


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
        published: list[publish.Publication] = []
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
            on_publish=published.append,
        )
        out.flush()
        if code != runner.EXIT_OK:
            raise dg.Failure("publish failed: silver and gold keep the last build that passed (see the log)")
        yield from published_materializations(nodes, built, published[0] if published else None, saved["run_id"])

    return publish_build
