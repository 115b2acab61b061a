"""The source schema is stated once (lakehouse/sources/schema.py); what restates it must agree.

The generator and the loader take their columns from it; the bronze contracts type each source
field by its name there, and dbt's sources document bronze columns: a column added, renamed or
dropped in one place and not the others fails here, not in a pipeline run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lakehouse.bronze.contracts import CONTRACTS, METADATA_COLUMNS
from lakehouse.modeling.runner import DBT_PROJECT_DIR
from lakehouse.sources import schema


def test_the_bronze_contracts_type_every_source_field_and_no_other() -> None:
    for table in schema.TABLES:
        contract = CONTRACTS[table.name]
        assert [f.source_name for f in contract.fields] == list(table.column_names), table.name
        assert contract.key == table.key, table.name
    assert sorted(f.source_name for f in CONTRACTS[schema.CONTENT_COLLECTION].fields) == sorted(schema.CONTENT_FIELDS)
    assert set(CONTRACTS) == {t.name for t in schema.TABLES} | {schema.CONTENT_COLLECTION}


def _dbt_source_columns() -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    for path in (DBT_PROJECT_DIR / "models" / "staging").rglob("_*__sources.yml"):
        for source in yaml.safe_load(Path(path).read_text())["sources"]:
            for table in source["tables"]:
                names = {c["name"] for c in table.get("columns", [])}
                columns.setdefault(table["name"], set()).update(names)
    return columns


def test_dbt_sources_name_only_bronze_columns() -> None:
    documented = _dbt_source_columns()
    assert set(documented) == set(CONTRACTS)
    for table, names in documented.items():
        bronze = set(CONTRACTS[table].field_names) | set(METADATA_COLUMNS)
        assert names <= bronze, (table, names - bronze)
