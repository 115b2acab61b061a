"""The maintain step: compact and clean up the Delta tables, each only when it is due.

For every table of ``pipeline.maintain_schemas`` (bronze and the dbt build schemas), its recent
history (one ``describe history`` each, all in one Thrift session) decides:

- **OPTIMIZE** when the commits since its last OPTIMIZE (or since it was last rewritten whole)
  added at least ``pipeline.optimize_min_small_files`` small data files (a commit's average
  file under :data:`SMALL_FILE_BYTES`): the files many small batches (appends, MERGEs) leave.
  A whole rewrite (dbt's table models, a full refresh) is as compact as its writer made it
  and an OPTIMIZE of it would find nothing to merge (one file per partition), so it starts the
  count again; a table written in a few large files, or a small table that changes rarely, is
  left alone. A bronze table is OPTIMIZEd ``ZORDER BY`` the first column of its key into files
  of about :data:`OPTIMIZE_FILE_BYTES`: the extract MERGEs a batch by key and rewrites every
  file that holds a key it updates, and a source's updates are mostly of its recent keys, so a
  table laid out in key ranges has them in a file or two (Delta's default, one file of up to
  1 GiB, would make the whole table that file). It rewrites the whole table, which a plain
  compaction would not: once every ``optimize_min_small_files`` small files.
- **VACUUM** at most every ``pipeline.vacuum_interval_hours`` per table (and not before the
  table is that old: nothing in it is old enough to delete before that), keeping
  ``pipeline.vacuum_retain_hours`` of removed files for time travel (the table property
  ``delta.deletedFileRetentionDuration``, set on bronze when first maintained). A table of a build schema
  (``gold_build``, ``silver_build``) is vacuumed only while its published view
  (``gold.x``, ``lakehouse/modeling/publish.py``) reads its newest version, and before this
  run's OPTIMIZE of it: every file that view reads is then live, and the files an OPTIMIZE
  replaces stay until a later build is published. The same holds for a bronze table that a
  published view reads ``VERSION AS OF`` (the silver staging views read bronze at the version
  the gate passed): it is vacuumed only while every such view reads its newest version (a
  failed gate keeps silver on an older one: bronze keeps those files until a build passes).
  So VACUUM never deletes a file that a published view still reads.
- The ``ops`` tables compact themselves (auto compaction) and are vacuumed every
  ``pipeline.ops_vacuum_commits`` commits.

Times are compared on the server's clock (``current_timestamp()``), never the machine's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lakehouse import profiling
from lakehouse.bronze.contracts import BRONZE_SCHEMA, CONTRACTS
from lakehouse.config import PipelineConfig
from lakehouse.modeling.publish import BUILD_SCHEMA_SUFFIX, removes_rows
from lakehouse.pipeline.context import Context, StepResult
from lakehouse.serving.sql_client import QueryError, QueryResult, schema_listing_sql, table_names

# Commits that replace the whole table: what was written before them is gone.
REWRITE_OPERATIONS = frozenset(
    {"CREATE TABLE AS SELECT", "REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT", "TRUNCATE"}
)
# A data file under this size is small: OPTIMIZE (whose target is 1 GiB) would merge it.
SMALL_FILE_BYTES = 32 * 1024 * 1024
# The files an OPTIMIZE of a bronze table writes, each one range of its key (the module's
# docstring): what a day's MERGE rewrites for an updated key, about 800k sessions at most.
OPTIMIZE_FILE_BYTES = SMALL_FILE_BYTES
MAX_FILE_SIZE_CONF = "spark.databricks.delta.optimize.maxFileSize"
# Per operation, the metrics naming the files and bytes a commit added (WRITE and CTAS, MERGE,
# UPDATE and DELETE).
ADDED_FILES_METRICS = ("numFiles", "numTargetFilesAdded", "numAddedFiles")
ADDED_BYTES_METRICS = ("numOutputBytes", "numTargetBytesAdded", "numAddedBytes")
# How many of a table's newest commits the decision reads.
HISTORY_COMMITS = 100
# A table a view reads at a version: `bronze`.`users` version as of 12, bronze.users VERSION AS OF 12.
PINNED_TABLE = re.compile(r"`?(\w+)`?\s*\.\s*`?(\w+)`?\s+version\s+as\s+of\s+(\d+)", re.IGNORECASE)
# The Thrift server renders a commit's maps as {"k":"v",...} without escaping the quotes inside
# values (a predicate, a column list): they are searched, not parsed.
METRIC = re.compile(r'"(\w+)"\s*:\s*"?(\d+)"?')


@dataclass(frozen=True)
class Commit:
    version: int
    timestamp: dt.datetime
    operation: str
    metrics: dict[str, str]
    parameters: str = ""  # as the Thrift server renders the map: not always valid JSON

    @property
    def rewrites_the_table(self) -> bool:
        # A WRITE in overwrite mode: the test the transform's skip decision makes.
        return self.operation in REWRITE_OPERATIONS or (
            self.operation == "WRITE" and removes_rows(self.operation, self.parameters, "")
        )

    def small_files_added(self) -> int:
        files = next((int(self.metrics[k]) for k in ADDED_FILES_METRICS if k in self.metrics), 0)
        written = next((int(self.metrics[k]) for k in ADDED_BYTES_METRICS if k in self.metrics), None)
        if not files:
            return 0
        # Without a byte count, say small: an OPTIMIZE too many costs less than small files kept.
        return files if written is None or written / files < SMALL_FILE_BYTES else 0


@dataclass(frozen=True)
class Plan:
    optimize: bool
    vacuum: bool
    small_files: int


def _timestamp(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None)


def server_now(sql: Callable[[str], QueryResult]) -> dt.datetime:
    """The Thrift server's clock, in the same zone as the timestamps of its Delta histories."""
    return _timestamp(sql("select cast(current_timestamp() as string)").rows[0][0])


def commits(history: QueryResult) -> list[Commit]:
    """The commits of a `describe history` answer, newest first."""
    index = {name: i for i, name in enumerate(history.columns)}
    found = [
        Commit(
            int(row[index["version"]]),
            _timestamp(row[index["timestamp"]]),
            str(row[index["operation"]]),
            dict(METRIC.findall(str(row[index["operationMetrics"]] or ""))),
            str(row[index["operationParameters"]] or ""),
        )
        for row in history.rows
    ]
    return sorted(found, key=lambda commit: -commit.version)


def small_files_since_optimize(newest_first: Sequence[Commit]) -> int:
    """Small data files added since the last OPTIMIZE, or since the table was rewritten whole."""
    total = 0
    for commit in newest_first:
        if commit.operation == "OPTIMIZE" or commit.rewrites_the_table:
            break
        total += commit.small_files_added()
    return total


def vacuum_due(newest_first: Sequence[Commit], now: dt.datetime, interval_hours: int, complete: bool) -> bool:
    """Due when the last VACUUM is at least ``interval_hours`` old; never vacuumed: when the
    table is (its first commit). A history cut short by the window: due (VACUUM is safe)."""
    since = next((c.timestamp for c in newest_first if c.operation == "VACUUM END"), None)
    if since is None:
        if not complete or not newest_first:
            return bool(newest_first)
        since = newest_first[-1].timestamp
    return now - since >= dt.timedelta(hours=interval_hours)


def plan(
    newest_first: Sequence[Commit],
    now: dt.datetime,
    settings: PipelineConfig,
    *,
    complete: bool,
    published_version: int | None = None,
    read_by_view: bool = False,
) -> Plan:
    """What a table needs. ``complete``: the history reaches its first commit.
    ``read_by_view``: a build table, or a table a published view reads ``VERSION AS OF``;
    ``published_version``: the (oldest) version such a view reads (None: no view, or one that
    could not be read)."""
    small = small_files_since_optimize(newest_first)
    vacuum = vacuum_due(newest_first, now, settings.vacuum_interval_hours, complete)
    if read_by_view and newest_first:
        # Only while the view reads the newest version are all of its files live.
        vacuum = vacuum and published_version == newest_first[0].version
    return Plan(optimize=small >= settings.optimize_min_small_files, vacuum=vacuum, small_files=small)


def published_schema(schema: str) -> str | None:
    """gold_build -> gold; None for a schema that is not a build schema."""
    return schema.removesuffix(BUILD_SCHEMA_SUFFIX) if schema.endswith(BUILD_SCHEMA_SUFFIX) else None


def published_view(table: str) -> str | None:
    """gold_build.x -> gold.x; None for a table of no build schema."""
    schema, name = table.split(".", 1)
    published = published_schema(schema)
    return f"{published}.{name}" if published else None


def pinned_versions(view_texts: Sequence[str]) -> dict[str, int]:
    """Each table the views read ``VERSION AS OF`` (schema.table, lower case), with the oldest
    version any of them reads."""
    pinned: dict[str, int] = {}
    for text in view_texts:
        for schema, table, version in PINNED_TABLE.findall(text):
            name = f"{schema}.{table}".lower()
            pinned[name] = min(int(version), pinned.get(name, int(version)))
    return pinned


def versions_read_by_views(sql: Callable[[str], QueryResult], schemas: Sequence[str]) -> dict[str, int]:
    """:func:`pinned_versions` of every view of the schemas (SHOW CREATE TABLE of each)."""
    return pinned_versions([text for schema in schemas for text in _view_texts(sql, schema)])


def _view_texts(sql: Callable[[str], QueryResult], schema: str) -> list[str]:
    """The definitions of the views of a schema (none when it does not exist)."""
    try:
        views = [str(row[1]) for row in sql(f"show views in {schema}").rows]
    except QueryError:
        return []
    return [" ".join(str(cell) for row in sql(f"show create table {schema}.{v}").rows for cell in row) for v in views]


def _delta_tables(sql: Callable[[str], QueryResult], schema: str) -> list[str]:
    try:
        listed, views = (sql(statement) for statement in schema_listing_sql(schema))
    except QueryError:
        return []  # the schema does not exist yet
    return table_names(listed, views)


def key_order(table: str) -> str | None:
    """The column an OPTIMIZE sorts a table by: the first of its key for a bronze table, else None."""
    schema, name = table.lower().split(".", 1)
    contract = CONTRACTS.get(name) if schema == BRONZE_SCHEMA else None
    return contract.key[0] if contract else None


def _optimize(sql: Callable[[str], QueryResult], table: str, order_by: str | None, file_bytes: int) -> None:
    if order_by is None:
        sql(f"optimize {table}")
        return
    sql(f"set {MAX_FILE_SIZE_CONF} = {file_bytes}")
    try:
        sql(f"optimize {table} zorder by ({order_by})")
    finally:
        sql(f"reset {MAX_FILE_SIZE_CONF}")


def maintain_table(
    sql: Callable[[str], QueryResult],
    table: str,
    now: dt.datetime,
    settings: PipelineConfig,
    pinned: int | None = None,
    *,
    order_by: str | None = None,
    file_bytes: int = OPTIMIZE_FILE_BYTES,
) -> Plan:
    """Decide, then run what is due: VACUUM first (see the module docstring), then OPTIMIZE.
    ``pinned``: the oldest version of the table that a published view reads (:func:`pinned_versions`);
    ``order_by``: the column an OPTIMIZE lays the table out by, in files of ``file_bytes``
    (:func:`key_order`), none for a plain compaction."""
    history = commits(sql(f"describe history {table} limit {HISTORY_COMMITS}"))
    view = published_view(table)
    decided = plan(
        history,
        now,
        settings,
        complete=bool(history) and history[-1].version == 0,
        published_version=pinned,
        read_by_view=view is not None or pinned is not None,
    )
    # The retention policy is a table property that every VACUUM honours (a manual one too): set
    # on the tables maintain keeps (not on a build table, which each dbt rewrite resets, only
    # before its VACUUM), once, and again when pipeline.vacuum_retain_hours changes.
    if decided.vacuum or view is None:
        retention = f"interval {settings.vacuum_retain_hours} hours"
        properties = dict(sql(f"show tblproperties {table}").rows)
        if properties.get("delta.deletedFileRetentionDuration") != retention:
            sql(f"alter table {table} set tblproperties ('delta.deletedFileRetentionDuration' = '{retention}')")
    if decided.vacuum:
        sql(f"vacuum {table}")
    if decided.optimize:
        _optimize(sql, table, order_by, file_bytes)
    return decided


def _vacuum_due_by_commits(sql: Callable[[str], QueryResult], table: str, every: int) -> bool:
    """True when none of the table's last ``every`` commits was a VACUUM."""
    history = sql(f"describe history {table} limit {every}")
    operations = [row[history.columns.index("operation")] for row in history.rows]
    return len(operations) >= every and "VACUUM END" not in operations


def maintain_ops(
    sql: Callable[[str], QueryResult], tables: list[str], settings: PipelineConfig, *, check_properties: bool = True
) -> list[str]:
    """Keep the ops tables, which every run appends to, from piling up files: auto compaction on
    (set at creation; added here to tables made before, unless ``check_properties`` is off), and
    a VACUUM every pipeline.ops_vacuum_commits commits. ``sql`` runs a statement (one session:
    :func:`lakehouse.serving.sql_client.session`). The tables vacuumed."""
    from lakehouse.audit import AUTO_COMPACT

    vacuumed = []
    for table in tables:
        if check_properties and dict(sql(f"show tblproperties {table}").rows).get(AUTO_COMPACT) != "true":
            sql(f"alter table {table} set tblproperties ('{AUTO_COMPACT}' = 'true')")
        if _vacuum_due_by_commits(sql, table, settings.ops_vacuum_commits):
            sql(f"vacuum {table}")
            vacuumed.append(table)
    return vacuumed


def step_maintain(ctx: Context, result: StepResult) -> None:
    from lakehouse.audit import OPS_SCHEMA, RUNS_TABLE
    from lakehouse.serving.sql_client import session

    settings = ctx.config.pipeline
    if not ctx.changed and not ctx.options.no_skip:
        # Only the run log changed; it alone may be due for a VACUUM.
        with session(ctx.config, etl=True) as sql:
            vacuumed = maintain_ops(sql, [RUNS_TABLE], settings, check_properties=False)
        result.status = "skipped"
        result.detail = "nothing changed" + (f"; vacuumed {', '.join(vacuumed)}" if vacuumed else "")
        return
    optimized, vacuumed, checked = [], [], 0
    phases = profiling.Phases()
    with session(ctx.config, etl=True) as sql:
        now = server_now(sql)
        with phases.timed("published views"):
            published = [p for p in map(published_schema, settings.maintain_schemas) if p]
            pinned = versions_read_by_views(sql, published)
        for schema in settings.maintain_schemas:
            for table in _delta_tables(sql, schema):
                name = f"{schema}.{table}"
                with phases.timed(name):
                    decided = maintain_table(
                        sql, name, now, settings, pinned.get(name.lower()), order_by=key_order(name)
                    )
                checked += 1
                if decided.optimize or decided.vacuum:
                    done = " and ".join(
                        w for w, d in (("vacuumed", decided.vacuum), ("optimized", decided.optimize)) if d
                    )
                    ctx.event("output", "maintain", f"  {name}: {done} ({decided.small_files} small files)")
                optimized += [name] if decided.optimize else []
                vacuumed += [name] if decided.vacuum else []
        with phases.timed(OPS_SCHEMA):
            ops = maintain_ops(sql, [f"{OPS_SCHEMA}.{table}" for table in _delta_tables(sql, OPS_SCHEMA)], settings)
    result.profile = {"phases": phases.seconds, "optimized": len(optimized), "vacuumed": len(vacuumed)}
    result.detail = (
        f"{checked} tables checked: optimized {len(optimized)} "
        f"(at least {settings.optimize_min_small_files} small files), vacuumed {len(vacuumed)} "
        f"(at most every {settings.vacuum_interval_hours} h, retain {settings.vacuum_retain_hours} h)"
        + (f"; vacuumed {', '.join(ops)}" if ops else "")
    )
