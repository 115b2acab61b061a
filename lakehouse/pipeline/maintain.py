"""The maintain step: OPTIMIZE and VACUUM what changed, and keep the ops tables small."""

from __future__ import annotations

from lakehouse import profiling
from lakehouse.pipeline.context import Context, StepResult
from lakehouse.serving.sql_client import QueryError

# A table whose newest commit is one of these has not changed since it was last maintained.
MAINTENANCE_OPERATIONS = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES")


def _delta_tables(ctx: Context, schema: str) -> list[str]:
    try:
        tables = {row[1] for row in ctx.sql(f"show tables in {schema}").rows}
        views = {row[1] for row in ctx.sql(f"show views in {schema}").rows}
    except QueryError:
        return []  # the schema does not exist yet
    return sorted(tables - views)


def _maintain_table(ctx: Context, name: str) -> bool:
    """OPTIMIZE and VACUUM one table by the retention policy; False if it had not changed."""
    newest = ctx.sql(f"describe history {name} limit 1")
    operation = newest.rows[0][newest.columns.index("operation")] if newest.rows else None
    if operation in MAINTENANCE_OPERATIONS:
        return False
    retention = f"interval {ctx.config.pipeline.vacuum_retain_hours} hours"
    properties = dict(ctx.sql(f"show tblproperties {name}").rows)
    if properties.get("delta.deletedFileRetentionDuration") != retention:
        ctx.sql(f"alter table {name} set tblproperties ('delta.deletedFileRetentionDuration' = '{retention}')")
    ctx.sql(f"optimize {name}")
    ctx.sql(f"vacuum {name}")
    return True


def _vacuum_due(ctx: Context, table: str) -> bool:
    """True when none of the table's last pipeline.ops_vacuum_commits commits was a VACUUM."""
    every = ctx.config.pipeline.ops_vacuum_commits
    history = ctx.sql(f"describe history {table} limit {every}")
    operations = [row[history.columns.index("operation")] for row in history.rows]
    return len(operations) >= every and "VACUUM END" not in operations


def maintain_ops(ctx: Context, tables: list[str], *, check_properties: bool = True) -> list[str]:
    """Keep the ops tables, which every run appends to, from piling up files: auto compaction on
    (set at creation; added here to tables made before, unless ``check_properties`` is off), and
    a VACUUM every pipeline.ops_vacuum_commits commits. The tables vacuumed."""
    from lakehouse.audit import AUTO_COMPACT

    vacuumed = []
    for table in tables:
        if check_properties and dict(ctx.sql(f"show tblproperties {table}").rows).get(AUTO_COMPACT) != "true":
            ctx.sql(f"alter table {table} set tblproperties ('{AUTO_COMPACT}' = 'true')")
        if _vacuum_due(ctx, table):
            ctx.sql(f"vacuum {table}")
            vacuumed.append(table)
    return vacuumed


def step_maintain(ctx: Context, result: StepResult) -> None:
    from lakehouse.audit import OPS_SCHEMA, RUNS_TABLE

    if not ctx.changed and not ctx.options.no_skip:
        # Only the run log changed; it alone may be due for a VACUUM.
        vacuumed = maintain_ops(ctx, [RUNS_TABLE], check_properties=False)
        result.status = "skipped"
        result.detail = "nothing changed" + (f"; vacuumed {', '.join(vacuumed)}" if vacuumed else "")
        return
    maintained, unchanged = 0, 0
    phases = profiling.Phases()
    for schema in ctx.config.pipeline.maintain_schemas:
        for table in _delta_tables(ctx, schema):
            name = f"{schema}.{table}"
            ctx.event("output", "maintain", f"  maintain {name}")
            with phases.timed(name):
                changed = _maintain_table(ctx, name)
            maintained += changed
            unchanged += not changed
    with phases.timed(OPS_SCHEMA):
        vacuumed = maintain_ops(ctx, [f"{OPS_SCHEMA}.{table}" for table in _delta_tables(ctx, OPS_SCHEMA)])
    result.profile = {"phases": phases.seconds}
    result.detail = (
        f"optimized and vacuumed {maintained} tables (retain {ctx.config.pipeline.vacuum_retain_hours} h)"
        + (f", {unchanged} unchanged" if unchanged else "")
        + (f"; vacuumed {', '.join(vacuumed)}" if vacuumed else "")
    )
