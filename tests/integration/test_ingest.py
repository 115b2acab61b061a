"""Extract and validate in one Spark application (lakehouse/pipeline/ingest.py), called the way
an orchestrator would: a SparkSession, the config, a run id; per-table results back.

`lakehouse pipeline` runs the same function through jobs/ingest.py (tests/e2e/test_pipeline.py
checks its profile: one Spark application for both steps)."""

from __future__ import annotations

import psycopg2
import pytest

from lakehouse.bronze.contracts import CONTRACTS
from lakehouse.config import Config
from lakehouse.pipeline.ingest import extract_and_validate

pytestmark = pytest.mark.integration


def test_extract_and_validate_in_one_session_validates_what_is_new_and_skips_the_rest(
    spark, services: Config, tiny_bronze
) -> None:
    said: list[str] = []

    def run(run_id: str):
        said.clear()
        return extract_and_validate(spark, services, run_id=run_id, progress=said.append)

    # Nothing new in the sources, but no gate has validated the tiny bronze yet: the decision
    # is asked, and says run.
    first = run("ingest-1")
    assert [r.status for r in first.extract] == ["succeeded"] * len(CONTRACTS)
    assert sum((r.rows_inserted or 0) + (r.rows_updated or 0) for r in first.extract) == 0
    assert first.gate == "passed", first.gate_detail
    assert any(line.startswith("the gate runs: bronze.") for line in said), said
    tables = first.tables()
    assert set(tables) == set(CONTRACTS)
    for name, table in tables.items():
        assert table["extract"] == "succeeded" and table["validate"] == "passed", (name, table)

    # Nothing new and everything validated: the gate is skipped.
    second = run("ingest-2")
    assert second.gate == "skipped" and second.verdict is None, second.gate_detail
    assert all("validate" not in table for table in second.tables().values())

    # One changed user: the extract writes it, and the gate runs without asking the decision.
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("update users set updated_at = now() where user_id = (select min(user_id) from users)")
    third = run("ingest-3")
    assert "the gate runs: the extract wrote 1 row(s) to bronze" in said, said
    assert third.gate == "passed", third.gate_detail
    statuses = {name: table["validate"] for name, table in third.tables().items()}
    assert statuses["users"] == "passed" and statuses["ratings"] == "skipped", statuses
