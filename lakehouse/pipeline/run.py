"""Run the selected steps in order, under the writer lock, with bounded retries of transient errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TextIO

from lakehouse import errors, profiling
from lakehouse.audit import new_run_id
from lakehouse.config import Config
from lakehouse.pipeline.context import STEPS, Context, GateFailed, Options, PipelineError, StepResult, TransientError
from lakehouse.pipeline.lock import LockedError, run_lock, shared_lock
from lakehouse.pipeline.maintain import step_maintain
from lakehouse.pipeline.steps import step_extract, step_sources, step_transform, step_up, step_validate
from lakehouse.pipeline.summary import print_profile, record_pipeline_steps, summary_text

TICK_SECONDS = 1.0


STEP_FUNCTIONS: dict[str, Callable[[Context, StepResult], None]] = {
    "up": step_up,
    "sources": step_sources,
    "extract": step_extract,
    "validate": step_validate,
    "transform": step_transform,
    "maintain": step_maintain,
}


def _ticker(ctx: Context, result: StepResult, stop: threading.Event) -> None:
    """On a terminal, a live line with the elapsed time of the running step."""
    started = time.monotonic()
    while not stop.wait(TICK_SECONDS):
        elapsed = int(time.monotonic() - started)
        print(f"\r  [{result.name} {elapsed // 60}:{elapsed % 60:02d}]", end="", file=ctx.out, flush=True)
    print("\r" + " " * 40 + "\r", end="", file=ctx.out, flush=True)


def run_step(ctx: Context, result: StepResult) -> None:
    """Run one step with bounded retries for transient failures."""
    result.started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    ctx.event("step_start", result.name, f"==> {result.name}")
    show_ticker = ctx.options.log_format == "text" and not ctx.options.quiet and ctx.out.isatty()
    try:
        retries = ctx.config.pipeline.step_retries
        for attempt in range(1, retries + 2):
            result.attempts = attempt
            stop = threading.Event()
            ticker = threading.Thread(target=_ticker, args=(ctx, result, stop), daemon=True)
            if show_ticker:
                ticker.start()
            try:
                STEP_FUNCTIONS[result.name](ctx, result)
                if result.status == "pending":
                    result.status = "succeeded"
                return
            except TransientError as exc:
                if attempt > retries:
                    raise PipelineError(f"{exc} (after {attempt} attempts)") from None
                delay = ctx.config.pipeline.retry_backoff_seconds * 2 ** (attempt - 1)
                ctx.event("retry", result.name, f"  {exc}; retrying in {delay:.0f} s", delay=delay)
                time.sleep(delay)
            finally:
                stop.set()
                if show_ticker:
                    ticker.join()
    finally:
        result.seconds = time.monotonic() - started
        result.ended_at = dt.datetime.now(dt.UTC)
        if result.name in THRIFT_STEPS:
            _record_thrift_peak(ctx, result)
        if result.span is not None:  # its work ran (partly) in another step's Spark application
            begun, ended = result.span
            result.started_at = dt.datetime.fromtimestamp(begun, dt.UTC)
            result.ended_at = dt.datetime.fromtimestamp(ended, dt.UTC)
            result.seconds = max(0.0, ended - begun)


# Steps whose work runs in the Thrift server's JVM (dbt's statements; maintain's).
THRIFT_STEPS = ("transform", "maintain")


def _record_thrift_peak(ctx: Context, result: StepResult) -> None:
    """The Thrift server's peak resident memory so far, when it runs on this machine."""
    from lakehouse.services import thrift
    from lakehouse.services.process import read_pid

    peak = profiling.peak_rss_mb(read_pid(thrift.pid_file(ctx.config)))
    if peak is not None:
        result.profile[profiling.THRIFT_PEAK_KEY] = peak


def selected_steps(options: Options) -> list[str]:
    if options.only:
        if options.only not in STEP_FUNCTIONS:
            raise ValueError(f"--only: unknown step {options.only!r}; steps are {', '.join(STEP_FUNCTIONS)}")
        return [options.only]
    start = options.from_step or STEPS[0]
    if start not in STEP_FUNCTIONS:
        raise ValueError(f"--from: unknown step {start!r}; steps are {', '.join(STEP_FUNCTIONS)}")
    end = options.until or list(STEP_FUNCTIONS)[-1]
    if end not in STEP_FUNCTIONS or STEPS.index(end) < STEPS.index(start):
        raise ValueError(f"until: {end!r} is not a step at or after {start!r}; steps are {', '.join(STEP_FUNCTIONS)}")
    return [s for s in STEP_FUNCTIONS if STEPS.index(start) <= STEPS.index(s) <= STEPS.index(end)]


@dataclass
class RunOutcome:
    """What :func:`execute` did: the exit code, the run's id and each step's result."""

    code: int
    run_id: str
    results: list[StepResult] = field(default_factory=list)


def _run(ctx: Context, results: list[StepResult], locks: contextlib.ExitStack, *, locked: bool = False) -> int:
    started_at = dt.datetime.now(dt.UTC)
    steps = [r.name for r in results]
    status = "succeeded"

    def notify(message: str) -> None:
        ctx.event("output", "lock", f"  {message}")

    for result in results:
        try:
            if result.name != "up" and not locked:
                # Every step after `up` writes: hold the lakehouse's shared writer lock (it
                # needs PostgreSQL, which `up` starts). Refused: this step fails, naming the holder.
                locks.enter_context(shared_lock(ctx.config, "pipeline", wait=ctx.options.wait, notify=notify))
                locked = True
            run_step(ctx, result)
        except Exception as exc:
            result.status = "failed"
            result.detail = errors.first_line(exc)
            result.gate_failed = isinstance(exc, GateFailed)
            ctx.event("error", result.name, f"lakehouse pipeline: {result.name} failed: {result.detail}")
            status = "failed"
            break
        ctx.event(
            "step_end",
            result.name,
            f"    {result.name}: {result.status} in {result.seconds:.1f} s",
            **{k: v for k, v in asdict(result).items() if k != "name"},
        )
    for result in results:
        if result.status == "pending":
            result.status = "skipped"
            result.detail = "not run: an earlier step failed"
            result.started_at = result.ended_at = dt.datetime.now(dt.UTC)
    services_up = "up" not in steps or results[0].status == "succeeded"
    if services_up:
        record_pipeline_steps(ctx, results, started_at, status)
    ctx.event(
        "summary", "summary", summary_text(ctx, results), status=status, spark_applications=ctx.spark_applications
    )
    if ctx.options.profile and services_up:
        print_profile(ctx)
    return 0 if status == "succeeded" else 1


def execute(
    config: Config, options: Options, out: TextIO = sys.stdout, run_id: str | None = None, *, locked: bool = False
) -> RunOutcome:
    """Run the selected steps in order under the run lock; code 0 only when every step succeeded.

    ``locked``: the caller holds both writer locks already (lakehouse/pipeline/lock.py) for a
    run of its own that this is a part of (Dagster's run: lakehouse/orchestration).
    """
    steps = selected_steps(options)
    ctx = Context(config, options, run_id or new_run_id(), out, steps=tuple(steps))
    results = [StepResult(name) for name in steps]
    if locked:
        with contextlib.ExitStack() as locks:
            return RunOutcome(_run(ctx, results, locks, locked=True), ctx.run_id, results)
    try:
        with (
            run_lock(config, wait=options.wait, notify=lambda m: ctx.event("output", "lock", f"  {m}")),
            contextlib.ExitStack() as locks,
        ):
            return RunOutcome(_run(ctx, results, locks), ctx.run_id, results)
    except LockedError as exc:
        ctx.event("error", "lock", f"lakehouse pipeline: error: {exc}")
        return RunOutcome(1, ctx.run_id, results)


def run_pipeline(config: Config, options: Options, out: TextIO = sys.stdout) -> int:
    """Run the selected steps in order under the run lock; 0 only when every step succeeded."""
    return execute(config, options, out).code
