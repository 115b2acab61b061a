"""What every step of a run shares: the options, the context, a step's result, its errors."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from lakehouse.config import Config
from lakehouse.errors import LakehouseError

if TYPE_CHECKING:
    from lakehouse.serving.sql_client import QueryResult

STEPS = ("up", "sources", "extract", "validate", "transform", "maintain", "summary")


class PipelineError(LakehouseError):
    """A step failed for a reason that retrying will not fix."""


class GateFailed(PipelineError):
    """The quality gate said no (now, or still on the same inputs): the data, not a fault."""


class TransientError(LakehouseError):
    """A step failed because something was not reachable yet; worth retrying."""


@dataclass
class StepResult:
    name: str
    status: str = "pending"  # succeeded, failed, skipped, pending
    seconds: float = 0.0
    attempts: int = 0
    rows_read: int | None = None
    rows_written: int | None = None
    rows_quarantined: int | None = None
    detail: str = ""
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    profile: dict[str, Any] = field(default_factory=dict)  # where the time went (lakehouse/profiling.py)
    # Epoch seconds of the step's own work when it is not the step function's whole call: the
    # extract's part of the extract-and-validate application, and the validate part of it.
    span: tuple[float, float] | None = None
    gate_failed: bool = False  # failed because the quality gate said no (GateFailed)


@dataclass
class Options:
    from_step: str | None = None
    only: str | None = None
    until: str | None = None  # the last step to run (with from_step: a range; Dagster runs parts)
    full_refresh: bool = False
    scale: str = "small"
    quiet: bool = False
    log_format: str = "text"  # text or json
    wait: bool = False
    # Fill empty sources with synthetic data even when they are not the project's own local
    # servers (LAKEHOUSE_POSTGRES_URL / LAKEHOUSE_MONGODB_URI set, as in compose).
    generate_sources: bool = False
    profile: bool = False  # print where the run's time went after the summary
    no_skip: bool = False  # run every step even when the lakehouse's state says it has nothing to do


@dataclass
class Context:
    config: Config
    options: Options
    run_id: str
    out: TextIO = field(default=sys.stdout)
    changed: bool = True  # did extract or sources change anything
    spark_applications: int = 0  # spark-submits started by this run
    steps: tuple[str, ...] = ()  # the steps this run runs, in order
    # The validate step's part of the extract's Spark application (lakehouse/pipeline/ingest.py),
    # with the application's exit code; taken by the validate step.
    gate_part: tuple[int, Any] | None = None

    def event(self, kind: str, step: str, message: str = "", **data: object) -> None:
        """One progress event: a line of text, or a JSON object per line for schedulers."""
        if self.options.log_format == "json":
            record = {"ts": dt.datetime.now(dt.UTC).isoformat(), "run_id": self.run_id, "event": kind, "step": step}
            record.update({"message": message} if message else {})
            record.update(data)
            print(json.dumps(record, default=str), file=self.out, flush=True)
        elif not self.options.quiet or kind in ("error", "summary", "profile"):
            print(message, file=self.out, flush=True)

    def sql(self, statement: str) -> QueryResult:
        """One statement of the pipeline's own work on the Thrift server (the etl pool)."""
        from lakehouse.serving.sql_client import run_query

        return run_query(self.config, statement, etl=True)
