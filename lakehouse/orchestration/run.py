"""A Dagster run of the lakehouse: its resource (services, writer lock), run id and log; and
the maintain op (a job of its own).

A Dagster run of the lakehouse is one writer, as a ``lakehouse pipeline`` run is: the
:class:`LakehouseRun` resource starts the services (the pipeline's ``up`` step) and takes both
writer locks (lakehouse/pipeline/lock.py) when the run begins, and holds them until it ends;
the definitions use the in-process executor, so that is once per run. A second writer (a CLI
command, another Dagster run) waits for the lock up to ``pipeline.lock_wait_seconds`` and then
fails naming the holder; Dagster does not retry it (the holder may run for long).

Every run has a project run id (``ops.pipeline_runs.run_id``) made from the Dagster run's id:
``<UTC start>-<first 8 characters of the Dagster run id>``; every materialisation and check
carries it as ``lakehouse_run_id``, the Dagster run has it as its tag ``lakehouse/run_id``, and
the audit rows carry the Dagster run's id prefix.
"""

import contextlib
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from lakehouse.config import Config, load_config
from lakehouse.pipeline.context import Options, StepResult

RUN_ID_KEY = "lakehouse_run_id"
RUN_TAG = "lakehouse/run_id"  # the Dagster run's tag: ops.pipeline_runs.run_id of its audit rows
WRITER_POOL = "lakehouse_writer"


class LakehouseRun(dg.ConfigurableResource):
    """The lakehouse's services up and its writer locks held for the whole Dagster run."""

    wait_for_lock: bool = True
    scale: str = "small"  # what the sources step generates into empty local sources (as --scale)

    def config(self) -> Config:
        return load_config()

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["LakehouseRun"]:
        from lakehouse import services
        from lakehouse.pipeline.lock import writer_lock

        run = context.dagster_run
        if run is not None and run.is_finished:
            # `dagster job execute` builds the run's context once more after the run, to hand
            # back its outputs: nothing runs then, so no services and no lock.
            yield self
            return
        config = self.config()
        log = context.log.info if context.log else print
        if run is not None and context.instance is not None:  # the Dagster run names its audit rows
            lakehouse_run = project_run_id(run.run_id, run_started_at(context.instance, run.run_id))
            context.instance.add_run_tags(run.run_id, {RUN_TAG: lakehouse_run})
        started = services.up(config, report=log)
        if started:
            log(f"started {', '.join(started)}")
        with writer_lock(config, "dagster", wait=self.wait_for_lock, notify=log):
            yield self


def project_run_id(run_id: str, started_at: dt.datetime) -> str:
    """The project's run id of a Dagster run: same shape as ``audit.new_run_id``."""
    return f"{started_at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{run_id.replace('-', '')[:8]}"


def run_started_at(instance: dg.DagsterInstance, run_id: str) -> dt.datetime:
    record = instance.get_run_record_by_id(run_id)
    created = record.create_timestamp if record is not None else None
    return created.astimezone(dt.UTC) if created is not None else dt.datetime.now(dt.UTC)


def run_id_of(context: dg.OpExecutionContext) -> str:
    return project_run_id(context.run_id, run_started_at(context.instance, context.run_id))


class LogWriter(io.TextIOBase):
    """A text stream whose lines go to Dagster's log (the CLI's progress lines, unchanged)."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self._log.info(line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._log.info(self._pending.rstrip())
        self._pending = ""

    def isatty(self) -> bool:
        return False


def step_result(results: Sequence[StepResult], name: str) -> StepResult | None:
    return next((r for r in results if r.name == name), None)


@dg.op(description="Step maintain of `lakehouse pipeline`: OPTIMIZE and VACUUM by threshold.")
def maintain(context: dg.OpExecutionContext, lakehouse: LakehouseRun) -> None:
    from lakehouse.pipeline.run import execute

    out = LogWriter(context.log)
    outcome = execute(lakehouse.config(), Options(only="maintain"), out, run_id_of(context), locked=True)
    out.flush()
    if outcome.code != 0:
        failed = step_result(outcome.results, "maintain")
        raise dg.Failure(f"maintain failed: {failed.detail if failed else 'see the log'}")
