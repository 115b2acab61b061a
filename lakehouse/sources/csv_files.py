"""The CSV files the generator writes: their Arrow schemas (from the source schema) and the writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from lakehouse.sources.schema import (
    RATINGS_TABLE,
    USERS_TABLE,
    VIEWING_SESSIONS_TABLE,
)

CSV_WRITE_CHUNK_ROWS = 1_000_000
USERS_COLUMNS = USERS_TABLE.column_names
VIEWING_SESSIONS_COLUMNS = VIEWING_SESSIONS_TABLE.column_names
RATINGS_COLUMNS = RATINGS_TABLE.column_names

PRICE_TYPE = pa.decimal128(6, 2)


def _csv_schema(columns: Sequence[str], types: Mapping[str, pa.DataType]) -> pa.Schema:
    """Arrow schema of a CSV file: the given types, strings for everything else."""
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in columns])


USERS_SCHEMA = _csv_schema(USERS_COLUMNS, {"user_id": pa.int64(), "monthly_price": PRICE_TYPE})
VIEWING_SESSIONS_SCHEMA = _csv_schema(
    VIEWING_SESSIONS_COLUMNS,
    {
        "session_id": pa.int64(),
        "user_id": pa.int64(),
        "watch_seconds": pa.int64(),
        "avg_bitrate_kbps": pa.int64(),
        "buffering_events": pa.int64(),
        "completed": pa.bool_(),
    },
)
RATINGS_SCHEMA = _csv_schema(RATINGS_COLUMNS, {"user_id": pa.int64(), "rating": pa.int64()})
# RFC 4180 CSV: text values quoted, numbers and booleans (true/false) bare, null = empty field.
CSV_WRITE_OPTIONS = pacsv.WriteOptions(include_header=True, quoting_style="needed")


def write_csv(path: Path, table: pa.Table, schema: pa.Schema) -> None:
    """Write one table as CSV with a header, in chunks of CSV_WRITE_CHUNK_ROWS rows."""
    with pacsv.CSVWriter(path, schema, write_options=CSV_WRITE_OPTIONS) as writer:
        for offset in range(0, max(table.num_rows, 1), CSV_WRITE_CHUNK_ROWS):
            writer.write_table(table.slice(offset, CSV_WRITE_CHUNK_ROWS))
