"""The source schema, stated once: the tables and the collection the platform's sources hold.

The generator writes these columns in this order (:mod:`lakehouse.sources.generate`), the
loader creates the PostgreSQL tables with these types (:mod:`lakehouse.sources.load`), and
tests check that the bronze contracts (``lakehouse/bronze/contracts.py``) type the same source
fields and that dbt's sources (``dbt/models/staging/*/_*__sources.yml``) name only those.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA = "public"  # the PostgreSQL schema of the source tables
CONTENT_COLLECTION = "content"

USERS_FILE = "users.csv"
CONTENT_FILE = "content.jsonl"
VIEWING_SESSIONS_FILE = "viewing_sessions.csv"
RATINGS_FILE = "ratings.csv"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class TableSpec:
    """One PostgreSQL source table: its file, typed columns and indexed columns."""

    name: str
    file: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in DDL order."""
        return tuple(name for name, _ in self.columns)

    @property
    def qualified(self) -> str:
        """``public.<name>`` for messages."""
        return f"{SCHEMA}.{self.name}"


USERS_TABLE = TableSpec(
    name="users",
    file=USERS_FILE,
    columns=(
        ("user_id", "bigint"),
        ("email", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("birth_date", "text"),  # free text in the legacy app: malformed values exist
        ("gender", "text"),
        ("country", "text"),
        ("city", "text"),
        ("signup_date", "date"),
        ("subscription_plan", "text"),
        ("billing_cycle", "text"),
        ("monthly_price", "numeric(10,2)"),
        ("status", "text"),
        ("updated_at", "timestamptz not null"),
    ),
    key=("user_id",),
)
VIEWING_SESSIONS_TABLE = TableSpec(
    name="viewing_sessions",
    file=VIEWING_SESSIONS_FILE,
    columns=(
        ("session_id", "bigint"),
        ("user_id", "bigint"),
        ("content_id", "text"),
        ("episode", "text"),
        ("started_at", "text"),  # device-reported ISO-8601 strings: unparseable ones exist
        ("ended_at", "text"),
        ("watch_seconds", "integer"),
        ("device_type", "text"),
        ("os", "text"),
        ("app_version", "text"),
        ("streaming_quality", "text"),
        ("avg_bitrate_kbps", "integer"),
        ("buffering_events", "integer"),
        ("completed", "boolean"),
        ("country", "text"),
        ("updated_at", "timestamptz not null"),
    ),
    key=("session_id",),
)
RATINGS_TABLE = TableSpec(
    name="ratings",
    file=RATINGS_FILE,
    columns=(
        ("user_id", "bigint"),
        ("content_id", "text"),
        ("rating", "smallint"),
        ("rated_at", "timestamptz"),
        ("updated_at", "timestamptz not null"),
    ),
    key=("user_id", "content_id"),
)
TABLES: tuple[TableSpec, ...] = (USERS_TABLE, VIEWING_SESSIONS_TABLE, RATINGS_TABLE)

# The fields of a content document, in the order the generator writes them.
CONTENT_FIELDS = (
    "_id",
    "title",
    "type",
    "genres",
    "release_year",
    "duration_minutes",
    "seasons",
    "cast",
    "director",
    "language",
    "country",
    "maturity_rating",
    "added_at",
    "updated_at",
)
