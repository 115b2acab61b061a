"""The code location's definitions: assets, checks, jobs, resources and the executor.

Loads with the services down: the dbt assets come from a manifest ``dbt parse`` wrote
(lakehouse/orchestration/manifest.py). The state directory and settings are the CLI's
(``LAKEHOUSE_HOME``, conf/lakehouse.yaml). ``lakehouse.orchestration.definitions`` holds the
``defs`` Dagster loads; this module only builds them (tests build their own).
"""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from lakehouse.config import Config, load_config
from lakehouse.modeling import runner
from lakehouse.orchestration import automation, bronze, run, transform
from lakehouse.orchestration import manifest as dbt_manifest

PIPELINE_JOB = "lakehouse_pipeline"
MAINTAIN_JOB = "lakehouse_maintain"


def build_definitions(config: Config | None = None) -> dg.Definitions:
    config = config or load_config()
    manifest_file = dbt_manifest.manifest_path(config)
    manifest = dbt_manifest.load(manifest_file)
    sources = bronze.source_specs()
    extract_and_validate = bronze.bronze_assets()
    dbt_build = transform.dbt_build_assets(manifest_file)
    published = transform.publish_assets(manifest)
    pipeline = dg.define_asset_job(
        PIPELINE_JOB,
        selection=dg.AssetSelection.assets(extract_and_validate, dbt_build, published),
        description="`lakehouse pipeline` without maintain: sources -> bronze (gate) -> dbt build -> publish.",
        hooks={automation.alert_on_failure},
    )
    maintain = dg.GraphDefinition(name=MAINTAIN_JOB, node_defs=[run.maintain]).to_job(
        description="`lakehouse maintain`: OPTIMIZE and VACUUM of the tables past their thresholds.",
        hooks={automation.alert_on_failure},
    )
    return dg.Definitions(
        assets=[*sources, extract_and_validate, dbt_build, published],
        jobs=[pipeline, maintain],
        schedules=[automation.daily_schedule(pipeline, config)],
        sensors=[automation.sources_sensor(pipeline, config)],
        resources={
            "lakehouse": run.LakehouseRun(),
            "dbt": DbtCliResource(
                project_dir=str(runner.DBT_PROJECT_DIR),
                profiles_dir=str(runner.DBT_PROJECT_DIR),
                dbt_executable=runner.dbt_executable(),
            ),
        },
        executor=dg.in_process_executor,
    )
