"""The dashboards as code: ``dashboards/`` in Superset's import format, checked and rendered.

The folder holds what Superset's own export holds, one YAML file per object, reviewed like code:

    databases/lakehouse.yaml   the Thrift endpoint (its URI is set from the config at import)
    datasets/lakehouse/*.yaml  the tables charts read: gold views; ops and the quarantine's
                               counts (never its payloads) for the data-health dashboard
    charts/*.yaml              one chart each: its form data (params) and its saved query context
    dashboards/*.yaml          layout (position) referencing charts by uuid and chartId

Two things differ from Superset's export, both for review: a chart's ``query_context`` is a
YAML mapping instead of a JSON string, and the database's URI is a placeholder. :func:`render`
turns the folder into what Superset's importers take; :func:`normalise_export` turns an export
(charts or dashboards a person built in Superset) back into the folder's form. :func:`check`
finds what would break a dashboard without a server: unknown uuids, columns a dataset does not
have, a dataset outside gold/ops, a chart missing from every layout, a native filter on a column
its dataset (or a chart in its scope) does not have.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from lakehouse.config import PROJECT_ROOT

DASHBOARDS_DIR = PROJECT_ROOT / "dashboards"
KINDS = ("databases", "datasets", "charts", "dashboards")
# The metadata.yaml type each importer expects.
IMPORT_TYPES = {"databases": "Database", "datasets": "SqlaTable", "charts": "Slice", "dashboards": "Dashboard"}
IMPORT_VERSION = "1.0.0"
# What the dashboards may read: the published gold views, and the ops tables for data health.
ALLOWED_SCHEMAS = ("gold", "ops")
# Beyond gold.* and ops.*, what a virtual dataset's SQL may read (data health: the quarantine's
# counts; the dataset's SQL leaves the payload column out).
ALLOWED_EXTRA_TABLES = ("bronze.quarantine",)
URI_PLACEHOLDER = "hive+lakehouse://127.0.0.1:10000/gold"
TABLE_REFERENCE = re.compile(r"\b(?:from|join)\s+`?([A-Za-z_][\w]*)`?\s*\.\s*`?([A-Za-z_]\w*)`?", re.IGNORECASE)
# Form-data keys that name one column, or hold a list of column names.
COLUMN_KEYS = ("x_axis", "entity", "series", "granularity_sqla")
COLUMN_LIST_KEYS = ("groupby", "columns", "all_columns")
# A raw table's sort: JSON strings '["column", false]'.
ORDER_BY_KEY = "order_by_cols"
METRIC_KEYS = ("metric", "x", "y", "size", "secondary_metric", "timeseries_limit_metric")
METRIC_LIST_KEYS = ("metrics", "percent_metrics")
# Native filters that filter the rows on a column of their target dataset (a time range needs none).
COLUMN_FILTER_TYPES = ("filter_select", "filter_range")


@dataclass(frozen=True)
class Bundle:
    """The folder's YAML files, parsed: relative path -> content."""

    files: dict[str, dict[str, Any]]

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {path: data for path, data in self.files.items() if path.startswith(kind + "/")}

    @property
    def databases(self) -> dict[str, dict[str, Any]]:
        return self.of("databases")

    @property
    def datasets(self) -> dict[str, dict[str, Any]]:
        return self.of("datasets")

    @property
    def charts(self) -> dict[str, dict[str, Any]]:
        return self.of("charts")

    @property
    def dashboards(self) -> dict[str, dict[str, Any]]:
        return self.of("dashboards")


def load(root: Path = DASHBOARDS_DIR) -> Bundle:
    files = {}
    for kind in KINDS:
        for path in sorted((root / kind).rglob("*.yaml")):
            data = yaml.safe_load(path.read_text())
            files[path.relative_to(root).as_posix()] = data if isinstance(data, dict) else {}
    return Bundle(files)


# ------------------------------------------------------------------ checks


def _column_names(value: Any) -> Iterator[str]:
    """Column names in a form-data value: a name, a list of names, or adhoc columns/metrics."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _column_names(item)
    elif isinstance(value, dict):
        if value.get("expressionType") == "SIMPLE":
            column = value.get("column") or {}
            name = column.get("column_name") if isinstance(column, dict) else None
            if name:
                yield name
            if value.get("subject"):
                yield value["subject"]
        elif value.get("columnType") == "BASE_AXIS" and value.get("expressionType") != "SQL":
            yield value.get("sqlExpression", "")


def chart_columns(params: dict[str, Any]) -> set[str]:
    """Every dataset column a chart's form data names (SQL expressions are not parsed)."""
    names: set[str] = set()
    for key in COLUMN_KEYS + COLUMN_LIST_KEYS:
        names.update(_column_names(params.get(key)))
    for key in METRIC_KEYS + METRIC_LIST_KEYS:
        value = params.get(key)
        if isinstance(value, dict | list):  # a saved metric's name is a string: not a column
            names.update(_column_names(value))
    names.update(_column_names(params.get("adhoc_filters") or []))
    for item in params.get(ORDER_BY_KEY) or []:
        order = json.loads(item) if isinstance(item, str) else item
        names.update(_column_names(order[:1] if isinstance(order, list) else order))
    return {name for name in names if name}


def _dataset_problems(path: str, data: dict[str, Any], database_uuids: set[str]) -> list[str]:
    problems = []
    if data.get("database_uuid") not in database_uuids:
        problems.append(f"{path}: database_uuid is not the uuid of a file in databases/")
    schema = data.get("schema")
    if schema not in ALLOWED_SCHEMAS:
        problems.append(f"{path}: schema {schema!r} is not one of {', '.join(ALLOWED_SCHEMAS)}")
    sql = data.get("sql") or ""
    for schema_name, table in TABLE_REFERENCE.findall(sql):
        name = f"{schema_name}.{table}".lower()
        if schema_name.lower() not in ALLOWED_SCHEMAS and name not in ALLOWED_EXTRA_TABLES:
            allowed = ", ".join(ALLOWED_EXTRA_TABLES)
            problems.append(f"{path}: its SQL reads {name}; datasets read gold.*, ops.* and {allowed}")
    if not data.get("columns"):
        problems.append(f"{path}: lists no columns")
    return problems


def _chart_problems(path: str, data: dict[str, Any], datasets: dict[str, dict[str, Any]]) -> list[str]:
    dataset = datasets.get(data.get("dataset_uuid", ""))
    if dataset is None:
        return [f"{path}: dataset_uuid is not the uuid of a file in datasets/"]
    problems = []
    params = data.get("params") or {}
    if params.get("viz_type") != data.get("viz_type"):
        problems.append(f"{path}: params.viz_type {params.get('viz_type')!r} is not viz_type {data.get('viz_type')!r}")
    known = {c["column_name"] for c in dataset.get("columns") or []}
    known |= {m["metric_name"] for m in dataset.get("metrics") or []}
    unknown = sorted(chart_columns(params) - known)
    if unknown:
        problems.append(f"{path}: {dataset['table_name']} has no column {unknown[0]!r}")
    context = data.get("query_context")
    if not isinstance(context, dict) or not context.get("queries"):
        problems.append(f"{path}: query_context is missing or has no queries (the chart-data API needs it)")
    elif (context.get("form_data") or {}).get("viz_type") != data.get("viz_type"):
        problems.append(f"{path}: query_context.form_data is not this chart's (viz_type differs)")
    return problems


def layout_charts(position: dict[str, Any]) -> list[dict[str, Any]]:
    """The CHART nodes' meta of a dashboard's position."""
    nodes = [node for node in position.values() if isinstance(node, dict)]
    return [node.get("meta") or {} for node in nodes if node.get("type") == "CHART"]


def _dashboard_problems(path: str, data: dict[str, Any], charts: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    if not data.get("dashboard_title") or not data.get("slug"):
        problems.append(f"{path}: needs dashboard_title and slug")
    for meta in layout_charts(data.get("position") or {}):
        if meta.get("uuid") not in charts:
            problems.append(f"{path}: its layout has chart {meta.get('uuid')} that charts/ does not")
        if not isinstance(meta.get("chartId"), int):
            problems.append(f"{path}: a chart of its layout has no integer meta.chartId")
    return problems


def _dataset_columns(dataset: dict[str, Any]) -> set[str]:
    return {c["column_name"] for c in dataset.get("columns") or []}


def _filter_problems(
    path: str, native_filter: dict[str, Any], datasets: dict[str, dict[str, Any]], layout: dict[int, dict[str, Any]]
) -> list[str]:
    """A native filter's target (a dataset of the bundle, a column it has) and its scope: the charts
    it reaches read that column (Superset drops a filter on a column the chart's dataset lacks)."""
    name = native_filter.get("name") or native_filter.get("id")
    in_scope = sorted(set(layout) - set((native_filter.get("scope") or {}).get("excluded") or []))
    if sorted(native_filter.get("chartsInScope") or []) != in_scope:
        return [f"{path}: filter {name!r} has chartsInScope that are not its layout's charts minus scope.excluded"]
    if native_filter.get("filterType") not in COLUMN_FILTER_TYPES:
        return []
    targets = native_filter.get("targets") or [{}]
    problems = []
    for target in targets:
        dataset = datasets.get(target.get("datasetUuid", ""))
        column = (target.get("column") or {}).get("name")
        if dataset is None:
            problems.append(
                f"{path}: filter {name!r} targets dataset {target.get('datasetUuid')}, not one of datasets/"
            )
            continue
        table = dataset["table_name"]
        if column not in _dataset_columns(dataset):
            problems.append(f"{path}: filter {name!r} targets column {column!r} that {table} does not have")
            continue
        for prefilter in sorted(
            set(_column_names(native_filter.get("adhoc_filters") or [])) - _dataset_columns(dataset)
        ):
            problems.append(f"{path}: filter {name!r} pre-filters on column {prefilter!r} that {table} does not have")
        for chart_id in in_scope:
            if not layout[chart_id]:
                continue  # a layout chart that charts/ does not have: reported with the layout
            chart_dataset = datasets.get(layout[chart_id].get("dataset_uuid", "")) or {}
            if column not in _dataset_columns(chart_dataset):
                chart = layout[chart_id].get("slice_name")
                problems.append(
                    f"{path}: filter {name!r} reaches chart {chart!r}, whose dataset has no column {column!r}"
                )
    return problems


def _native_filters_problems(
    path: str, data: dict[str, Any], datasets: dict[str, dict[str, Any]], charts: dict[str, dict[str, Any]]
) -> list[str]:
    layout = {
        meta.get("chartId"): charts.get(meta.get("uuid")) or {} for meta in layout_charts(data.get("position") or {})
    }
    problems = []
    for native_filter in (data.get("metadata") or {}).get("native_filter_configuration") or []:
        problems += _filter_problems(path, native_filter, datasets, layout)
    return problems


def check(bundle: Bundle) -> list[str]:
    """What would break an import or a chart, one line each; empty when the folder is sound."""
    problems = []
    seen: dict[str, str] = {}
    for path, data in bundle.files.items():
        uuid = data.get("uuid")
        if not uuid:
            problems.append(f"{path}: has no uuid")
        elif uuid in seen:
            problems.append(f"{path}: uuid {uuid} is also {seen[uuid]}'s")
        else:
            seen[uuid] = path
    if len(bundle.databases) != 1:
        problems.append(f"databases/: holds {len(bundle.databases)} databases; the dashboards use one, the lakehouse")
    database_uuids = {d.get("uuid") for d in bundle.databases.values()}
    for path, data in bundle.datasets.items():
        problems += _dataset_problems(path, data, database_uuids)
    datasets = {d.get("uuid"): d for d in bundle.datasets.values()}
    for path, data in bundle.charts.items():
        problems += _chart_problems(path, data, datasets)
    charts = {c.get("uuid"): c for c in bundle.charts.values()}
    placed: list[str] = []
    for path, data in bundle.dashboards.items():
        problems += _dashboard_problems(path, data, charts)
        problems += _native_filters_problems(path, data, datasets, charts)
        placed += [meta.get("uuid") for meta in layout_charts(data.get("position") or {})]
    chart_ids = [meta.get("chartId") for d in bundle.dashboards.values() for meta in layout_charts(d.get("position"))]
    if len(chart_ids) != len(set(chart_ids)):
        problems.append("dashboards/: two charts of the layouts share a meta.chartId")
    for path, data in bundle.charts.items():
        if data.get("uuid") not in placed:
            problems.append(f"{path}: is on no dashboard")
    return problems


# ------------------------------------------------------------------ import and export


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a virtual dataset's SQL) as literal blocks, and no anchors: readable in a diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(data: dict[str, Any]) -> str:
    """YAML as the folder keeps it: keys in their order, SQL as literal blocks."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def render(bundle: Bundle, sqlalchemy_uri: str) -> dict[str, dict[str, str]]:
    """The contents each Superset importer takes, in import order: kind -> {path: YAML text}.

    Each step carries the files its objects depend on (a chart's dataset and database)."""
    texts = {}
    for path, data in bundle.files.items():
        data = dict(data)
        if path.startswith("databases/"):
            data["sqlalchemy_uri"] = sqlalchemy_uri
        if path.startswith("charts/") and isinstance(data.get("query_context"), dict):
            data["query_context"] = json.dumps(data["query_context"])
        texts[path] = dump(data)
    timestamp = datetime.now(UTC).isoformat()
    steps = {}
    for index, kind in enumerate(KINDS):
        metadata = {"version": IMPORT_VERSION, "type": IMPORT_TYPES[kind], "timestamp": timestamp}
        wanted = KINDS[: index + 1]
        files = {path: text for path, text in texts.items() if path.split("/")[0] in wanted}
        steps[kind] = {"metadata.yaml": dump(metadata), **files}
    return steps


def _without_dataset_ids(chart: dict[str, Any]) -> dict[str, Any]:
    """A chart with its query context as a mapping and without the ids it and its dataset had in
    one Superset (the import sets the dataset's from dataset_uuid): an export again gives the same file."""
    context = chart.get("query_context")
    if isinstance(context, str):
        context = json.loads(context)
    (chart.get("params") or {}).pop("datasource", None)
    if isinstance(context, dict):
        context.pop("datasource", None)
        for key in ("datasource", "slice_id"):  # the chart's id in the Superset it came from
            (context.get("form_data") or {}).pop(key, None)
        for query in context.get("queries") or []:
            query.pop("datasource", None)
    chart["query_context"] = context
    return chart


def normalise_export(contents: dict[str, str]) -> dict[str, str]:
    """Superset's export (paths under its root folder -> YAML) in this folder's form."""
    out = {}
    for name, text in contents.items():
        parts = PurePosixPath(name).parts
        relative = PurePosixPath(*parts[1:]) if parts and parts[0] not in KINDS else PurePosixPath(name)
        if not relative.parts or relative.parts[0] not in KINDS:
            continue  # metadata.yaml, themes
        data = yaml.safe_load(text) or {}
        if relative.parts[0] == "databases":
            data["sqlalchemy_uri"] = URI_PLACEHOLDER
            data.pop("password", None)
        if relative.parts[0] == "charts":
            data = _without_dataset_ids(data)
        out[relative.as_posix()] = dump(data)
    return out
