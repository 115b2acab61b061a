"""Great Expectations plumbing: one ephemeral Data Context per gate run.

The gate computes each suite in one pass (:mod:`lakehouse.quality.evaluate`) and hands the
result to :meth:`GxRunner.record`: the context keeps the suites and their validation results in
its in-memory stores until :meth:`GxRunner.build_docs` renders them to HTML on the local
filesystem; the rows that outlive the run go to ``ops.dq_results``.

:meth:`GxRunner.validate` runs a suite through GE's own validator instead (one Spark datasource
per bronze table, ``persist=False``, a dataframe asset and validation definition per suite):
the reference that tests/unit/test_gate_evaluate.py compares the one-pass results with.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# isort: off
import expectations  # noqa: F401  (analytics off before great_expectations loads)
import great_expectations as gx
from great_expectations.core import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
# isort: on

from pyspark.sql import DataFrame

SITE = "lakehouse"
BATCH_DEFINITION = "whole_dataframe"
RESULT_FORMAT = "SUMMARY"


class GxRunner:
    """Validates suites on Spark DataFrames and renders the results as Data Docs."""

    def __init__(self, docs_dir: Path, run_name: str, *, example_keys: int) -> None:
        self.docs_dir = docs_dir
        self.example_keys = example_keys
        self.run_identifier = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
        # In-memory stores, no temporary docs site, our own site, no progress bars, no analytics.
        project_config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            data_docs_sites={
                SITE: {
                    "class_name": "SiteBuilder",
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                }
            },
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=project_config)
        self._datasources: dict[str, Any] = {}
        # The gate validates tables side by side; the context's stores are not thread-safe.
        self._lock = threading.Lock()

    def _datasource(self, table: str) -> Any:
        """One Spark datasource per bronze table (``bronze.<table>``), holding its three assets."""
        if table not in self._datasources:
            self._datasources[table] = self.context.data_sources.add_spark(name=table, persist=False)
        return self._datasources[table]

    def result_format(self, index_columns: Sequence[str]) -> dict[str, Any]:
        """SUMMARY, with the keys of up to ``example_keys`` failing rows (found by Spark)."""
        return {
            "result_format": RESULT_FORMAT,
            "unexpected_index_column_names": list(index_columns),
            "partial_unexpected_count": max(1, self.example_keys),
        }

    def validate(
        self,
        suite: gx.ExpectationSuite,
        frame: DataFrame,
        *,
        index_columns: Sequence[str],
        parameters: dict[str, Any],
    ) -> Any:
        """Run one suite on one DataFrame; the result is kept for the Data Docs."""
        asset = self._datasource(suite.name.rsplit(".", 1)[0]).add_dataframe_asset(name=suite.name)
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        stored_suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=stored_suite)
        )
        return definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            result_format=self.result_format(index_columns),
            run_id=self.run_identifier,
        )

    def record(self, suite: gx.ExpectationSuite, result: ExpectationSuiteValidationResult) -> None:
        """Keep a suite's result computed outside GE's validator, for the Data Docs (thread-safe)."""
        with self._lock:
            self._record(suite, result)

    def _record(self, suite: gx.ExpectationSuite, result: ExpectationSuiteValidationResult) -> None:
        self.context.suites.add(suite)
        suite_id = ExpectationSuiteIdentifier(name=suite.name)
        result.meta.update(
            great_expectations_version=gx.__version__,
            run_id=self.run_identifier,
            validation_time=self.run_identifier.run_time,
            active_batch_definition={"datasource_name": suite.name.rsplit(".", 1)[0], "data_asset_name": suite.name},
        )
        key = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=self.run_identifier, batch_identifier=suite.name
        )
        self.context.validation_results_store.store_validation_results(result, key, suite_id)

    def build_docs(self) -> Path:
        """Render this run's validation results (and the suites) to HTML; return index.html."""
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        self.context.build_data_docs(site_names=[SITE])
        return self.docs_dir / "index.html"
