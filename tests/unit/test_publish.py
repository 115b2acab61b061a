"""What publishing a passed dbt build says to the Thrift server (lakehouse/modeling/publish.py), without one."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse.modeling import publish


def _node(
    name: str, schema: str, materialized: str, *, depends_on: tuple[str, ...] = (), code: str | None = None
) -> dict:
    kind = "snapshot" if materialized == "snapshot" else "model"
    return {
        "unique_id": f"{kind}.lakehouse.{name}",
        "name": name,
        "alias": name,
        "schema": schema,
        "config": {"materialized": materialized},
        "description": f"The {name}.\n  Grain: one row per thing's id.",
        "compiled_code": code,
        "depends_on": {"nodes": list(depends_on)},
    }


def _manifest(*nodes: dict) -> dict[str, Any]:
    return {"nodes": {node["unique_id"]: node for node in nodes}}


STG = _node("stg_users", "silver_build", "table")
SNAP = _node("snap_users", "silver_build", "snapshot")
INT_A = _node(
    "int_a",
    "silver_build",
    "view",
    depends_on=("model.lakehouse.stg_users",),
    code="select * from silver_build.stg_users join `silver_build`.`snap_users` using (user_id)",
)
INT_B = _node(
    "int_b", "silver_build", "view", depends_on=("model.lakehouse.int_a",), code="select * from silver_build.int_a"
)
FACT = _node("fct", "gold_build", "incremental", depends_on=("model.lakehouse.int_b",))
EPHEMERAL = _node("eph", "silver_build", "ephemeral")
MANIFEST = _manifest(STG, SNAP, INT_A, INT_B, FACT, EPHEMERAL)


def test_only_the_models_and_snapshots_an_invocation_built_are_published() -> None:
    results = {
        "results": [
            {"unique_id": "model.lakehouse.stg_users", "status": "success"},
            {"unique_id": "snapshot.lakehouse.snap_users", "status": "success"},
            {"unique_id": "model.lakehouse.fct", "status": "error"},
            {"unique_id": "model.lakehouse.int_a", "status": "skipped"},
            {"unique_id": "test.lakehouse.unique_stg_users_user_id.1", "status": "pass"},
        ]
    }
    assert publish.succeeded(results) == {"model.lakehouse.stg_users", "snapshot.lakehouse.snap_users"}


def test_tables_come_first_then_views_after_the_views_they_read() -> None:
    nodes = publish.built_nodes(MANIFEST, [n["unique_id"] for n in (INT_B, FACT, INT_A, STG, SNAP, EPHEMERAL)])
    assert [node.name for node in nodes] == ["fct", "stg_users", "snap_users", "int_a", "int_b"]
    assert {node.relation for node in nodes} == {
        "gold.fct",
        "silver.stg_users",
        "silver.snap_users",
        "silver.int_a",
        "silver.int_b",
    }


def test_a_table_is_published_as_a_view_pinned_to_the_tested_version() -> None:
    nodes = publish.built_nodes(MANIFEST, ["model.lakehouse.fct", "model.lakehouse.int_a"])
    sql = publish.statements(nodes, {"model.lakehouse.fct": 17}, existing_tables={"gold.fct"})
    assert sql == [
        "drop table gold.fct",  # still a table from before publishing existed: replaced once
        "create or replace view gold.fct comment 'The fct. Grain: one row per thing\\'s id.' "
        "as select * from gold_build.fct version as of 17",
        "create or replace view silver.int_a comment 'The int_a. Grain: one row per thing\\'s id.' "
        "as select * from silver.stg_users join `silver`.`snap_users` using (user_id)",
    ]


def test_views_read_the_published_schemas_and_nothing_else_is_renamed() -> None:
    code = "select silver_build.x, my_silver_build.y, `gold_build`.`z` from silver_build.t -- silver_build"
    assert publish.published_sql(code, {"silver_build", "gold_build"}) == (
        "select silver.x, my_silver_build.y, `gold`.`z` from silver.t -- silver_build"
    )


def test_a_node_outside_the_build_schemas_is_refused() -> None:
    stray = _node("stray", "gold", "table")
    with pytest.raises(publish.PublishError, match=r"model.lakehouse.stray is built in gold, not in a build schema"):
        publish.built_nodes(_manifest(stray), ["model.lakehouse.stray"])


def test_a_view_without_compiled_sql_is_refused() -> None:
    nodes = publish.built_nodes(_manifest(_node("v", "silver_build", "view")), ["model.lakehouse.v"])
    with pytest.raises(publish.PublishError, match="no compiled SQL"):
        publish.statements(nodes, {}, set())


@pytest.mark.parametrize(
    ("operation", "parameters", "metrics", "removes"),
    [
        ("MERGE", '{"predicate":"..."}', '{"numTargetRowsDeleted":"0","numTargetRowsInserted":"5"}', False),
        ("MERGE", "{}", '{"numTargetRowsDeleted":"2"}', True),
        ("DELETE", '{"predicate":"[\\"(session_id = 1)\\"]"}', '{"numDeletedRows":"1"}', True),
        ("WRITE", '{"mode":"Append"}', "{}", False),
        ("WRITE", '{"mode":"Overwrite"}', "{}", True),  # a full-refresh extract
        ("CREATE OR REPLACE TABLE AS SELECT", "{}", "{}", True),
        ("OPTIMIZE", "{}", '{"numRemovedFiles":"9"}', False),  # files, not rows
        ("SET TBLPROPERTIES", "{}", "", False),
    ],
)
def test_a_commit_that_takes_rows_out_of_bronze_is_recognised(
    operation: str, parameters: str, metrics: str, removes: bool
) -> None:
    assert publish.removes_rows(operation, parameters, metrics) is removes


def test_the_project_fingerprint_follows_the_dbt_files(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: x\n")
    model = tmp_path / "models" / "m.sql"
    model.write_text("select 1")
    first = publish.project_fingerprint(tmp_path)
    assert publish.project_fingerprint(tmp_path) == first
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "manifest.json").write_text("{}")  # dbt's output does not count
    assert publish.project_fingerprint(tmp_path) == first
    model.write_text("select 2")
    assert publish.project_fingerprint(tmp_path) != first
