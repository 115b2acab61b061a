"""The dbt project's conventions, checked on its parsed manifest (`dbt parse`, no server needed).

Every model states its grain and has a tested key, only staging reads sources, models are
built in silver_build and gold_build (published as silver and gold), tables are Delta, marts
say which question they answer, the logic that matters has unit tests, and no external
package is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lakehouse.modeling.publish import BUILD_SCHEMA_SUFFIX
from lakehouse.modeling.runner import COLUMN_CHECKS_SUFFIXES, DBT_PROJECT_DIR, dbt_executable

UNIQUENESS_TESTS = {"unique", "unique_combination"}
# The checks dbt/tests/generic/column_checks.sql makes, each an argument of it.
COLUMN_CHECKS = ("not_null", "unique", "unique_combination", "accepted_values", "accepted_range", "relationships")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    target = tmp_path_factory.mktemp("dbt-target")
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    result = subprocess.run(
        [dbt_executable(), "--no-use-colors", "parse", "--project-dir", str(DBT_PROJECT_DIR)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "[WARNING]" not in result.stdout, result.stdout[-3000:]
    return json.loads((target / "manifest.json").read_text())


def _models(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]


def _tests_on(manifest: dict[str, Any], unique_id: str) -> list[dict[str, Any]]:
    return [
        n for n in manifest["nodes"].values() if n["resource_type"] == "test" and n.get("attached_node") == unique_id
    ]


def test_every_model_has_a_description_with_its_grain_and_documented_columns(manifest: dict[str, Any]) -> None:
    models = _models(manifest)
    assert len(models) >= 20
    for model in models:
        assert "grain" in model["description"].lower(), model["name"]
        assert model["columns"], f"{model['name']}: no documented columns"
        for column in model["columns"].values():
            assert column["description"].strip(), f"{model['name']}.{column['name']}: no description"


def test_the_grain_is_stated_once_in_the_yml_not_in_the_sql() -> None:
    stated = [p.name for p in (DBT_PROJECT_DIR / "models").rglob("*.sql") if "grain:" in p.read_text().lower()]
    assert stated == []


def test_the_orphan_check_and_the_as_of_join_are_macros() -> None:
    """Written once in dbt/macros/validation.sql, used by every model that needs them."""
    models = DBT_PROJECT_DIR / "models"
    for name in ("int_ratings_validated", "int_viewing_sessions_validated"):
        sql = next(models.rglob(f"{name}.sql")).read_text()
        assert "flag_orphans(" in sql and "'orphan_" not in sql, name
    for name in ("fct_ratings", "fct_viewing_sessions"):
        sql = next(models.rglob(f"{name}.sql")).read_text()
        assert "version_valid_at(" in sql and ">= users.valid_from" not in sql, name


def _checks(manifest: dict[str, Any], unique_id: str) -> set[str]:
    """The names of the checks on a model: its tests, and each check its column_checks make."""
    names = set()
    for test in _tests_on(manifest, unique_id):
        metadata = test.get("test_metadata") or {}
        if metadata.get("name") == "column_checks":
            names |= {check for check in COLUMN_CHECKS if metadata["kwargs"].get(check)}
        elif metadata:
            names.add(metadata["name"])
    return names


def _checked_columns(manifest: dict[str, Any], unique_id: str, check: str) -> list[str]:
    """The columns a model's column_checks tests check with ``check``."""
    columns: list[str] = []
    for test in _tests_on(manifest, unique_id):
        metadata = test.get("test_metadata") or {}
        if metadata.get("name") == "column_checks":
            checked = metadata["kwargs"].get(check) or []
            columns += [c for item in checked for c in ([item] if isinstance(item, str) else item)]
    return columns


def test_every_model_has_a_tested_key(manifest: dict[str, Any]) -> None:
    for model in _models(manifest):
        names = _checks(manifest, model["unique_id"])
        assert names & UNIQUENESS_TESTS, f"{model['name']}: no unique or unique_combination test"
        if model["name"].startswith(("dim_", "fct_")):
            assert "not_null" in names, model["name"]


def test_column_checks_are_one_test_per_model_and_severity(manifest: dict[str, Any]) -> None:
    """not_null, unique, unique_combination, accepted_values, accepted_range and relationships
    go through column_checks (one query per model), not one test each; each is named after its
    model and severity (the runner names the failed checks by it) and every column it names
    exists in the model's yml."""
    for model in [*_models(manifest), *(n for n in manifest["nodes"].values() if n["resource_type"] == "snapshot")]:
        tests = _tests_on(manifest, model["unique_id"])
        single = {t["test_metadata"]["name"] for t in tests if t.get("test_metadata")} & set(COLUMN_CHECKS)
        assert not single, f"{model['name']}: {sorted(single)} as tests of their own, not in column_checks"
        combined = [t for t in tests if (t.get("test_metadata") or {}).get("name") == "column_checks"]
        kinds = [(t["config"]["severity"].lower(), bool(t["config"].get("where"))) for t in combined]
        assert len(kinds) == len(set(kinds)), f"{model['name']}: two column_checks of one severity and scope"
        for test in combined:
            warns = test["config"]["severity"].lower() == "warn"
            suffix = COLUMN_CHECKS_SUFFIXES[2] if test["config"].get("where") else COLUMN_CHECKS_SUFFIXES[warns]
            assert test["name"] == model["name"] + suffix, f"{test['name']}: the runner names failures by it"
        named = {c for check in COLUMN_CHECKS for c in _checked_columns(manifest, model["unique_id"], check)}
        assert named <= set(model["columns"]), f"{model['name']}: no column {sorted(named - set(model['columns']))}"


# dbt/macros/partition_tests.sql: the checks a test may make on the new partitions only (a row
# passes or fails them on its own values), and the models whose tests may be scoped so.
PARTITION_LOCAL_CHECKS = {"not_null", "accepted_values", "accepted_range"}
PARTITION_SCOPED = {"fct_viewing_sessions": "session_date"}


def test_only_row_level_checks_of_incremental_tables_are_scoped_to_new_partitions(manifest: dict[str, Any]) -> None:
    """A `where` on a test is `new_partitions(<the model's partition column>)`, on an incremental
    model partitioned by it, and the test makes only partition-local checks: never unique or
    relationships, never a singular test. The fact's row-level checks are scoped (its unique and
    relationships stay whole, in a test of their own)."""
    scoped = {}
    for test in (n for n in manifest["nodes"].values() if n["resource_type"] == "test"):
        where = test["config"].get("where")
        if not where:
            continue
        metadata = test.get("test_metadata") or {}
        assert metadata.get("name") == "column_checks", f"{test['name']}: only column_checks may be scoped"
        checks = {check for check in COLUMN_CHECKS if metadata["kwargs"].get(check)}
        assert checks <= PARTITION_LOCAL_CHECKS, f"{test['name']}: {sorted(checks - PARTITION_LOCAL_CHECKS)} scoped"
        model = manifest["nodes"][test["attached_node"]]
        assert model["config"]["materialized"] == "incremental", test["name"]
        assert where == f"new_partitions({model['config']['partition_by'][0]})", test["name"]
        scoped[model["name"]] = where.removeprefix("new_partitions(").removesuffix(")")
    assert scoped == PARTITION_SCOPED
    fact = manifest["nodes"]["model.lakehouse.fct_viewing_sessions"]["unique_id"]
    assert {"unique", "relationships", "not_null"} <= _checks(manifest, fact)


def test_facts_test_every_foreign_key(manifest: dict[str, Any]) -> None:
    for model in _models(manifest):
        if not model["name"].startswith(("fct_", "bridge_")):
            continue
        key_columns = {c for c in model["columns"] if c.endswith("_sk")}
        related = set(_checked_columns(manifest, model["unique_id"], "relationships"))
        missing = key_columns - related
        assert not missing, f"{model['name']}: no relationships test on {sorted(missing)}"


def test_only_staging_models_read_sources(manifest: dict[str, Any]) -> None:
    for model in _models(manifest):
        reads_source = any(d.startswith("source.") for d in model["depends_on"]["nodes"])
        assert reads_source == model["name"].startswith("stg_"), model["name"]


def test_dbt_builds_in_the_build_schemas_of_silver_and_gold_and_tables_are_delta(manifest: dict[str, Any]) -> None:
    """dbt writes only silver_build and gold_build; silver and gold are published (lakehouse/modeling/publish.py)."""
    for model in _models(manifest):
        expected = "gold" if model["fqn"][1] == "marts" else "silver"
        assert model["schema"] == expected + BUILD_SCHEMA_SUFFIX, model["name"]
        if model["config"]["materialized"] in ("table", "incremental"):
            assert model["config"]["file_format"] == "delta", model["name"]
        assert model["config"]["persist_docs"] == {"relation": True, "columns": True}, model["name"]
    snapshot = manifest["nodes"]["snapshot.lakehouse.snap_users"]
    assert snapshot["schema"] == "silver" + BUILD_SCHEMA_SUFFIX
    assert snapshot["config"]["file_format"] == "delta"


def test_the_snapshot_compares_only_the_users_ingested_since_its_last_run(manifest: dict[str, Any]) -> None:
    """Left out of its input, a user must be left alone (hard_deletes: ignore), not closed."""
    snapshot = manifest["nodes"]["snapshot.lakehouse.snap_users"]
    assert snapshot["config"]["strategy"] == "check"
    assert snapshot["config"]["hard_deletes"] == "ignore"
    assert snapshot["depends_on"]["nodes"] == ["model.lakehouse.stg_postgres__users"]
    assert "where _ingested_at > {{ high_water_mark(this, '_ingested_at') }}" in snapshot["raw_code"]


def test_fact_is_an_incremental_merge_partitioned_by_date(manifest: dict[str, Any]) -> None:
    config = manifest["nodes"]["model.lakehouse.fct_viewing_sessions"]["config"]
    assert config["materialized"] == "incremental"
    assert config["incremental_strategy"] == "merge"
    assert config["unique_key"] == "session_id"
    assert config["partition_by"] == ["session_date"]
    # It deletes what is no longer valid and may move a session across partitions (macros/incremental.sql).
    assert config["merge_delete_column"] == "_is_deleted"


def test_marts_say_which_question_they_answer(manifest: dict[str, Any]) -> None:
    marts = [m for m in _models(manifest) if m["name"].startswith("mart_")]
    assert {m["name"] for m in marts} >= {
        "mart_daily_kpis",
        "mart_content_performance",
        "mart_genre_popularity",
        "mart_subscriptions",
        "mart_viewing_patterns",
        "mart_co_watched",
    }
    for mart in marts:
        assert mart["description"].startswith("Question:"), mart["name"]


def test_sources_have_freshness_on_ingestion_time(manifest: dict[str, Any]) -> None:
    sources = manifest["sources"].values()
    assert {s["name"] for s in sources} == {"users", "viewing_sessions", "ratings", "content"}
    for source in sources:
        assert source["schema"] == "bronze"
        assert source["loaded_at_field"] == "_ingested_at", source["name"]
        assert source["freshness"]["error_after"]["count"], source["name"]


def test_logic_has_unit_tests(manifest: dict[str, Any]) -> None:
    tested = {u["model"] for u in manifest["unit_tests"].values()}
    assert {"fct_viewing_sessions", "mart_content_performance", "dim_users"} <= tested


def test_no_external_packages() -> None:
    assert not (DBT_PROJECT_DIR / "packages.yml").exists()
    assert not (DBT_PROJECT_DIR / "dependencies.yml").exists()


def test_profile_reads_the_connection_from_the_environment() -> None:
    profile = Path(DBT_PROJECT_DIR / "profiles.yml").read_text()
    for key in ("host", "port", "user", "schema"):
        line = next(line for line in profile.splitlines() if line.strip().startswith(f"{key}:"))
        assert "env_var(" in line, line
    assert "method: thrift" in profile
    assert "retry_all: true" in profile


def test_staging_models_read_bronze_at_the_version_the_gate_checked(manifest: dict[str, Any]) -> None:
    """Each staging model reads its source through validated_version (VERSION AS OF the var)."""
    for model in _models(manifest):
        if model["name"].startswith("stg_"):
            assert "{{ validated_version(source(" in model["raw_code"], model["name"]
            assert "macro.lakehouse.validated_version" in model["depends_on"]["macros"], model["name"]
