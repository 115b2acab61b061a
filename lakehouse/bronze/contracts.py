"""Schema contracts for the bronze tables: what each source field is typed as.

A contract is the explicit, versioned answer to "what does this source send us". Bronze
tables are source-aligned: every contract field, typed, plus the metadata columns
``_ingested_at``, ``_batch_id``, ``_source_system`` and ``_rescued_data`` (a JSON object of the
fields the contract does not know, or null). A row whose value cannot be typed, or whose key
is missing, goes to ``bronze.quarantine`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

POSTGRES = "postgres"
MONGODB = "mongodb"
BRONZE_SCHEMA = "bronze"
OPS_SCHEMA = "ops"
QUARANTINE_TABLE = f"{BRONZE_SCHEMA}.quarantine"
# Rows an operator moved from bronze to quarantine (`lakehouse quarantine`) carry a batch id
# with this prefix and the whole bronze row as JSON, written with these options: microseconds
# and UTC, so that the extract can tell the same version of the record when it reads it again.
OPERATOR_BATCH_PREFIX = "operator-"
RECORD_JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX", "timeZone": "UTC"}
UPDATED_AT = "updated_at"

INGESTED_AT = "_ingested_at"
BATCH_ID = "_batch_id"
SOURCE_SYSTEM = "_source_system"
RESCUED_DATA = "_rescued_data"
METADATA_COLUMNS = (INGESTED_AT, BATCH_ID, SOURCE_SYSTEM, RESCUED_DATA)


@dataclass(frozen=True)
class Field:
    name: str
    dtype: T.DataType
    required: bool = False  # a null value sends the row to quarantine
    source: str | None = None  # the field's name in the source, when it differs

    @property
    def source_name(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Contract:
    """One source table (or collection) and the bronze table it lands in."""

    source_system: str
    source_name: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    # Numeric column to split parallel JDBC reads on (PostgreSQL only).
    partition_column: str | None = None

    @property
    def table(self) -> str:
        return f"{BRONZE_SCHEMA}.{self.source_name}"

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, f.dtype, nullable=True) for f in self.fields])

    @property
    def bronze_schema(self) -> T.StructType:
        metadata = [
            T.StructField(INGESTED_AT, T.TimestampType(), False),
            T.StructField(BATCH_ID, T.StringType(), False),
            T.StructField(SOURCE_SYSTEM, T.StringType(), False),
            T.StructField(RESCUED_DATA, T.StringType(), True),
        ]
        return T.StructType(self.schema.fields + metadata)


def _f(name: str, dtype: T.DataType, required: bool = False, source: str | None = None) -> Field:
    return Field(name, dtype, required, source)


STRING = T.StringType()
LONG = T.LongType()
INT = T.IntegerType()
TIMESTAMP = T.TimestampType()
DATE = T.DateType()

USERS = Contract(
    POSTGRES,
    "users",
    key=("user_id",),
    partition_column="user_id",
    fields=(
        _f("user_id", LONG, required=True),
        _f("email", STRING),
        _f("first_name", STRING),
        _f("last_name", STRING),
        _f("birth_date", DATE),
        _f("gender", STRING),
        _f("country", STRING),
        _f("city", STRING),
        _f("signup_date", DATE),
        _f("subscription_plan", STRING),
        _f("billing_cycle", STRING),
        _f("monthly_price", T.DecimalType(10, 2)),
        _f("status", STRING),
        _f(UPDATED_AT, TIMESTAMP, required=True),
    ),
)

VIEWING_SESSIONS = Contract(
    POSTGRES,
    "viewing_sessions",
    key=("session_id",),
    partition_column="session_id",
    fields=(
        _f("session_id", LONG, required=True),
        _f("user_id", LONG),
        _f("content_id", STRING),
        _f("episode", STRING),
        _f("started_at", TIMESTAMP, required=True),
        _f("ended_at", TIMESTAMP),
        _f("watch_seconds", INT),
        _f("device_type", STRING),
        _f("os", STRING),
        _f("app_version", STRING),
        _f("streaming_quality", STRING),
        _f("avg_bitrate_kbps", INT),
        _f("buffering_events", INT),
        _f("completed", T.BooleanType()),
        _f("country", STRING),
        _f(UPDATED_AT, TIMESTAMP, required=True),
    ),
)

RATINGS = Contract(
    POSTGRES,
    "ratings",
    key=("user_id", "content_id"),
    partition_column="user_id",
    fields=(
        _f("user_id", LONG, required=True),
        _f("content_id", STRING, required=True),
        _f("rating", INT),
        _f("rated_at", TIMESTAMP),
        _f(UPDATED_AT, TIMESTAMP, required=True),
    ),
)

EPISODE = T.StructType(
    [
        T.StructField("episode_number", INT),
        T.StructField("title", STRING),
        T.StructField("duration_minutes", INT),
    ]
)
SEASON = T.StructType(
    [
        T.StructField("season_number", INT),
        T.StructField("episodes", T.ArrayType(EPISODE)),
    ]
)

CONTENT = Contract(
    MONGODB,
    "content",
    key=("content_id",),
    fields=(
        # Mongo's `_id`, renamed: a leading underscore is reserved for bronze metadata.
        _f("content_id", STRING, required=True, source="_id"),
        _f("title", STRING),
        _f("type", STRING),
        _f("genres", T.ArrayType(STRING)),
        _f("release_year", INT),
        _f("duration_minutes", INT),
        _f("seasons", T.ArrayType(SEASON)),
        _f("cast", T.ArrayType(STRING)),
        _f("director", STRING),
        _f("language", STRING),
        _f("country", STRING),
        _f("maturity_rating", STRING),
        _f("added_at", TIMESTAMP),
        _f(UPDATED_AT, TIMESTAMP, required=True),
    ),
)

CONTRACTS: dict[str, Contract] = {c.source_name: c for c in (USERS, VIEWING_SESSIONS, RATINGS, CONTENT)}


def contracts_for(source_system: str, tables: list[str] | None = None) -> list[Contract]:
    """The contracts of one source, optionally only the named tables (unknown names fail clearly)."""
    if tables:
        unknown = [t for t in tables if t not in CONTRACTS or CONTRACTS[t].source_system != source_system]
        if unknown:
            known = [c.source_name for c in CONTRACTS.values() if c.source_system == source_system]
            raise ValueError(f"{source_system} has no table {unknown[0]!r}: known tables are {', '.join(known)}")
        return [CONTRACTS[t] for t in tables]
    return [c for c in CONTRACTS.values() if c.source_system == source_system]
