"""Publish: the last step of write-audit-publish, after dbt has built and tested silver and gold.

dbt never writes what BI tools read. It builds every model and snapshot in *build* schemas
(``silver_build``, ``gold_build``: ``dbt/macros/generate_schema_name.sql``) and runs every test
there. Only when the whole invocation passed does :func:`publish` make it visible, in one short
step over the Thrift server: each table of the build becomes a view of the published schema
(``silver``, ``gold``) pinned to the Delta version that was tested, and each dbt view is
re-created over the published objects::

    create or replace view gold.fct_viewing_sessions comment '...'
        as select * from gold_build.fct_viewing_sessions version as of 17

A build with any failed model or test publishes nothing: every object in ``silver`` and ``gold``
keeps its definition, so BI users keep reading the versions the last green build tested (the
build tables may have moved on; the pinned views do not follow). Replacing a view is one
metastore update, so no reader ever sees a half-written table; the step as a whole takes a few
seconds (one statement per object), and readers see each object switch in dependency order.

Only the nodes this invocation built are published (a ``--select`` publishes its selection);
dbt's own column comments reach the views (Spark copies them from the pinned table), the
model's description becomes the view's comment. A published object that is still a table (a
state directory from before publishing existed) is dropped once and replaced by its view.

The build tables are kept, with their history: the views pin versions of them, so VACUUM must
keep those files. The maintain step (lakehouse/pipeline/maintain.py) vacuums a build table only
while its view reads the newest version, before compacting it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.audit import AUTO_COMPACT, OPS_SCHEMA
from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.errors import LakehouseError
from lakehouse.serving.sql_client import (
    QueryError,
    newest_version,
    newest_version_sql,
    run_queries,
    schema_listing_sql,
    sql_literal,
    table_names,
)

# Appended by dbt/macros/generate_schema_name.sql to silver and gold (the var build_schema_suffix).
BUILD_SCHEMA_SUFFIX = "_build"
# Materializations that leave a Delta table behind (published as a pinned view).
TABLE_MATERIALIZATIONS = frozenset({"table", "incremental", "snapshot"})
VIEW_MATERIALIZATION = "view"
# run_results.json status of a model or snapshot that was built.
SUCCESS = "success"
MAX_COMMENT_CHARS = 1000
# One row per published build: the bronze versions it read and the dbt project it ran.
BUILDS_TABLE = f"{OPS_SCHEMA}.published_builds"
# What a build's result depends on besides bronze (the project's fingerprint).
PROJECT_PATHS = ("dbt_project.yml", "models", "macros", "snapshots", "tests", "analyses")
# Delta operations that take rows out of a bronze table, which an incremental model would keep
# (and a WRITE in overwrite mode, a MERGE that deleted: removes_rows).
REMOVING_OPERATIONS = frozenset({"DELETE", "TRUNCATE", "CREATE OR REPLACE TABLE AS SELECT", "REPLACE TABLE AS SELECT"})
# Delta operations that change no row (the maintain step, comments, properties).
DATA_NEUTRAL_OPERATIONS = frozenset(
    {
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "CHANGE COLUMN",
        "CHANGE COLUMNS",
    }
)


class PublishError(LakehouseError):
    """The build passed but could not be published (the server refused a statement)."""


@dataclass(frozen=True)
class Node:
    """A model or snapshot of the build, as the manifest describes it."""

    unique_id: str
    build_schema: str
    name: str  # the relation's name (dbt's alias)
    materialized: str
    description: str
    compiled_code: str | None
    depends_on: tuple[str, ...]

    @property
    def schema(self) -> str:
        """The published schema: the build schema without its suffix."""
        return self.build_schema.removesuffix(BUILD_SCHEMA_SUFFIX)

    @property
    def build_relation(self) -> str:
        return f"{self.build_schema}.{self.name}"

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def is_table(self) -> bool:
        return self.materialized in TABLE_MATERIALIZATIONS


@dataclass(frozen=True)
class Publication:
    tables: int
    views: int
    seconds: float
    versions: dict[str, int] = field(default_factory=dict)  # unique_id -> the build table's version pinned

    def describe(self) -> str:
        return f"published {self.tables} tables and {self.views} views in {self.seconds:.1f} s"


def succeeded(run_results: dict[str, Any]) -> set[str]:
    """The models and snapshots an invocation built (status success), by unique_id."""
    return {
        str(result["unique_id"])
        for result in run_results.get("results", [])
        if str(result.get("status", "")).lower() == SUCCESS
        and str(result.get("unique_id", "")).split(".", 1)[0] in ("model", "snapshot")
    }


def built_nodes(manifest: dict[str, Any], unique_ids: Iterable[str]) -> list[Node]:
    """The nodes to publish, tables first, then views in dependency order."""
    nodes = []
    for unique_id in sorted(set(unique_ids)):
        raw = manifest["nodes"][unique_id]
        materialized = str(raw["config"]["materialized"])
        if materialized not in TABLE_MATERIALIZATIONS and materialized != VIEW_MATERIALIZATION:
            continue  # ephemeral: nothing in the catalog
        schema = str(raw["schema"])
        if not schema.endswith(BUILD_SCHEMA_SUFFIX):
            raise PublishError(
                f"{unique_id} is built in {schema}, not in a build schema (*{BUILD_SCHEMA_SUFFIX}): "
                "see dbt/macros/generate_schema_name.sql"
            )
        nodes.append(
            Node(
                unique_id=unique_id,
                build_schema=schema,
                name=str(raw.get("alias") or raw["name"]),
                materialized=materialized,
                description=" ".join(str(raw.get("description") or "").split()),
                compiled_code=raw.get("compiled_code"),
                depends_on=tuple(raw.get("depends_on", {}).get("nodes", [])),
            )
        )
    tables = [node for node in nodes if node.is_table]
    return tables + _in_dependency_order([node for node in nodes if not node.is_table])


def _in_dependency_order(views: list[Node]) -> list[Node]:
    """Views after the views they read (the others they read are tables, published first)."""
    pending = {node.unique_id: node for node in views}
    ordered: list[Node] = []
    while pending:
        ready = [n for n in pending.values() if not any(d in pending for d in n.depends_on)]
        if not ready:
            raise PublishError(f"views depend on each other in a cycle: {', '.join(sorted(pending))}")
        for node in sorted(ready, key=lambda n: n.unique_id):
            ordered.append(node)
            del pending[node.unique_id]
    return ordered


def published_sql(code: str, build_schemas: Iterable[str]) -> str:
    """A view's compiled SQL reading the published schemas instead of the build schemas."""
    for schema in sorted(set(build_schemas), key=len, reverse=True):
        published = schema.removesuffix(BUILD_SCHEMA_SUFFIX)
        code = re.sub(rf"(?<![\w`]){re.escape(schema)}\.", f"{published}.", code)
        code = code.replace(f"`{schema}`.", f"`{published}`.")
    return code


def _comment(node: Node) -> str:
    return f" comment {sql_literal(node.description[:MAX_COMMENT_CHARS])}" if node.description else ""


def statements(nodes: list[Node], versions: dict[str, int], existing_tables: set[str]) -> list[str]:
    """The publish statements: drop what is still a table, then one view per node."""
    build_schemas = {node.build_schema for node in nodes}
    sql = [f"drop table {node.relation}" for node in nodes if node.relation in existing_tables]
    for node in nodes:
        if node.is_table:
            body = f"select * from {node.build_relation} version as of {versions[node.unique_id]}"
        else:
            if not node.compiled_code:
                raise PublishError(f"{node.unique_id}: the manifest has no compiled SQL for this view")
            body = published_sql(node.compiled_code.strip().rstrip(";"), build_schemas)
        sql.append(f"create or replace view {node.relation}{_comment(node)} as {body}")
    return sql


def publish(config: Config, target_dir: Path, unique_ids: set[str]) -> Publication:
    """Publish what an invocation built; ``target_dir`` holds its manifest.json."""
    started = time.monotonic()
    manifest = json.loads((target_dir / "manifest.json").read_text())
    nodes = built_nodes(manifest, unique_ids)
    if not nodes:
        return Publication(0, 0, time.monotonic() - started)
    tables = [node for node in nodes if node.is_table]
    schemas = sorted({node.schema for node in nodes})
    # One session: each build table's newest version, and which published names are still
    # tables (state from before publishing existed), then the statements.
    lookups = [newest_version_sql(node.build_relation) for node in tables]
    for schema in schemas:
        lookups += [f"create database if not exists {schema}", *schema_listing_sql(schema)]
    try:
        answers = run_queries(config, lookups, etl=True)
        versions = {node.unique_id: newest_version(answer) for node, answer in zip(tables, answers, strict=False)}
        existing: set[str] = set()
        for index, schema in enumerate(schemas):
            _created, listed, views = answers[len(tables) + 3 * index : len(tables) + 3 * index + 3]
            existing |= {f"{schema}.{name}" for name in table_names(listed, views)}
        run_queries(config, statements(nodes, versions, existing), etl=True)
    except QueryError as exc:
        raise PublishError(f"publish: the build passed but was not published: {exc}") from None
    return Publication(len(tables), len(nodes) - len(tables), time.monotonic() - started, versions)


# ------------------------------------------------------------------ what the last build read


@dataclass(frozen=True)
class PublishedBuild:
    run_id: str
    bronze_versions: dict[str, int]
    project: str
    # The projects of this build and of every --select build published after it.
    projects_since: frozenset[str] = frozenset()

    def published_everything_with(self, project: str) -> bool:
        """Every published object was built and tested by ``project``: the last full build and
        each selection published since ran it."""
        return self.projects_since == {project}


def project_fingerprint(project_dir: Path | None = None) -> str:
    """A hash of the dbt project's files: a build of the same bronze with the same project
    gives the same tables."""
    root = project_dir or PROJECT_ROOT / "dbt"
    digest = hashlib.sha256()
    for name in PROJECT_PATHS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def last_full_build(config: Config) -> PublishedBuild | None:
    """The newest published build of the whole project (no --select), if any."""
    try:
        [result] = run_queries(
            config,
            [
                f"select run_id, bronze_versions, project, selection from {BUILDS_TABLE} "
                f"where published_at >= (select max(published_at) from {BUILDS_TABLE} where selection is null) "
                "order by published_at desc"
            ],
            etl=True,
        )
    except QueryError as exc:
        if "TABLE_OR_VIEW_NOT_FOUND" in str(exc) or "SCHEMA_NOT_FOUND" in str(exc):
            return None
        raise
    full = [row for row in result.rows if row[3] is None]
    if not full:
        return None
    run_id, versions, project, _selection = full[0]
    return PublishedBuild(
        str(run_id),
        {k: int(v) for k, v in json.loads(versions).items()},
        str(project),
        frozenset(str(row[2]) for row in result.rows),
    )


def record_build(
    config: Config, run_id: str, bronze_versions: dict[str, int], project: str, selection: str | None
) -> None:
    """Store what a published build read (``ops.published_builds``)."""
    row = ", ".join(
        [
            sql_literal(run_id),
            "current_timestamp()",
            sql_literal(json.dumps(bronze_versions, sort_keys=True)),
            sql_literal(project),
            sql_literal(selection),
        ]
    )
    run_queries(
        config,
        [
            f"create database if not exists {OPS_SCHEMA}",
            f"create table if not exists {BUILDS_TABLE} (run_id string, published_at timestamp, "
            "bronze_versions string, project string, selection string) using delta "
            "comment 'One row per published dbt build: the bronze versions it read, the project fingerprint.' "
            f"tblproperties ('{AUTO_COMPACT}' = 'true')",
            f"insert into {BUILDS_TABLE} values ({row})",
        ],
        etl=True,
    )


def removes_rows(operation: str, parameters: str, metrics: str) -> bool:
    """Did this Delta commit take rows out of the table (not only add or replace by key)?"""
    if operation == "WRITE":
        return '"mode":"overwrite"' in (parameters or "").lower().replace(" ", "")
    if operation == "MERGE":
        return int(json.loads(metrics or "{}").get("numTargetRowsDeleted", 0)) > 0
    return operation in REMOVING_OPERATIONS


@dataclass(frozen=True)
class BronzeChanges:
    changed: list[str]  # tables with a commit that changed rows
    removed: list[str]  # ... of which one took rows out


def bronze_changes(config: Config, since: dict[str, int], now: dict[str, int]) -> BronzeChanges:
    """What changed in bronze between the versions ``since`` and ``now``, from Delta's history.

    Maintenance commits (OPTIMIZE, VACUUM, properties, comments) change no row and do not count.
    """
    tables = [table for table, version in now.items() if version > since.get(table, -1)]
    # Newest first: exactly the commits after `since`.
    histories = run_queries(
        config,
        [f"describe history bronze.{table} limit {now[table] - since.get(table, -1)}" for table in tables],
        etl=True,
    )
    changed, removed = [], []
    for table, history in zip(tables, histories, strict=True):
        index = {name: i for i, name in enumerate(history.columns)}
        commits = [
            (
                str(row[index["operation"]]),
                str(row[index["operationParameters"]] or ""),
                str(row[index["operationMetrics"]] or ""),
            )
            for row in history.rows
            if since.get(table, -1) < int(row[index["version"]]) <= now[table]
        ]
        # A commit missing from the history (its log entry cleaned up) may have changed anything.
        complete = len(commits) == now[table] - since.get(table, -1)
        if not complete or any(operation not in DATA_NEUTRAL_OPERATIONS for operation, _p, _m in commits):
            changed.append(table)
        if any(removes_rows(*commit) for commit in commits):
            removed.append(table)
    return BronzeChanges(changed, removed)
