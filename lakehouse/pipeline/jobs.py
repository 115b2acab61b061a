"""Spark applications of a run: spark-submit of a job file, its output relayed, its profile kept.

The pipeline's steps call :func:`spark_job`; ``lakehouse extract`` and ``lakehouse validate``
on their own call :func:`submit_job`. Both stop a job running past
``pipeline.job_timeout_seconds`` with one line (:func:`job_timeout_message`).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from lakehouse import processes, profiling, spark
from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.pipeline.context import Context, PipelineError, StepResult, TransientError
from lakehouse.services.process import ServiceError

# Output of Spark and the JVM that says nothing to a person running the pipeline.
NOISE = re.compile(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARN)|WARNING: Using incubator|\s+at |\s*$)")

TRANSIENT = re.compile(
    r"unreachable|Connection refused|could not connect|TTransportException|did not become ready|"
    r"cannot reach the Thrift server",
    re.IGNORECASE,
)


@dataclass
class StepPart:
    """The work of one step inside a job: its output lines, what it announced, when it ran."""

    step: str
    began_at: float  # epoch seconds
    ended_at: float = 0.0
    lines: list[str] = field(default_factory=list)
    announced: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@dataclass
class JobRun:
    """One spark-submit of a step: its exit code, output, and what it announced for the profile.

    A job that runs a later step too (jobs/ingest.py: validate after extract) says where that
    step begins (:func:`lakehouse.profiling.announce_step_begins`); its output and
    announcements from there on are that step's part in ``later``, not the job's own.
    """

    code: int
    output: str  # the whole output, later parts included
    timed_out: bool
    announced: dict[str, Any]  # the starting step's own
    later: dict[str, StepPart] = field(default_factory=dict)

    @property
    def own_ended_at(self) -> float | None:
        """When the starting step's own work ended (the first later step's start), or None."""
        return min((part.began_at for part in self.later.values()), default=None)


class _Relay:
    """A job's output lines as they come: its progress relayed, its profile marks kept, the
    parts of later steps (:func:`lakehouse.profiling.announce_step_begins`) split off."""

    def __init__(self, ctx: Context, step: str) -> None:
        self.ctx, self.step = ctx, step
        self.lines: list[str] = []
        self.announced: dict[str, Any] = {}
        self.parts: list[StepPart] = []

    def __call__(self, line: str) -> None:
        values = profiling.parse_line(line)
        if values is not None:
            if profiling.STEP_BEGINS_KEY in values:
                later = str(values[profiling.STEP_BEGINS_KEY])
                self.parts.append(StepPart(later, float(values.get("at") or time.time())))
                self.ctx.event(
                    "output", later, f"  {later}: runs in this Spark application (its summary follows {self.step}'s)"
                )
            else:
                (self.parts[-1].announced if self.parts else self.announced).update(values)
            return
        self.lines.append(line)
        if self.parts:
            self.parts[-1].lines.append(line)
        if not NOISE.match(line):
            self.ctx.event("output", self.parts[-1].step if self.parts else self.step, f"  {line}", line=line)

    def finish(self, code: int, timed_out: bool) -> JobRun:
        ended = time.time()
        for i, part in enumerate(self.parts):
            part.ended_at = self.parts[i + 1].began_at if i + 1 < len(self.parts) else ended
        return JobRun(code, "\n".join(self.lines), timed_out, self.announced, {p.step: p for p in self.parts})


def stream_job(ctx: Context, step: str, command: list[str], env: dict[str, str], timeout: float) -> JobRun:
    """Run a command, relaying its meaningful lines as progress; stop it after ``timeout`` s."""
    relay = _Relay(ctx, step)
    finished = processes.stream(command, on_line=relay, timeout=timeout, env=env, cwd=PROJECT_ROOT)
    return relay.finish(finished.code, finished.timed_out)


def failure_line(output: str) -> str:
    """The most telling line of a failed step's output."""
    meaningful = [line for line in output.splitlines() if not NOISE.match(line)]
    for line in reversed(meaningful):
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()
    return meaningful[-1].strip() if meaningful else "no output"


def check_exit(code: int, output: str, what: str) -> None:
    if code == 0:
        return
    line = failure_line(output)
    if TRANSIENT.search(output):
        raise TransientError(f"{what}: {line}")
    raise PipelineError(f"{what}: {line}")


def spark_job(ctx: Context, result: StepResult, job: str, args: list[str]) -> JobRun:
    """spark-submit one job for the step (jobs/ingest.py: on the ingest server when
    ``pipeline.ingest_server`` is on); the profile of the step's own part goes to ``result``."""
    from lakehouse.pipeline import ingest_server

    spark.write_spark_conf(ctx.config)
    step = result.name
    submitted_at = time.time()
    timeout = ctx.config.pipeline.job_timeout_seconds
    on_server = job == "ingest.py" and ingest_server.for_pipeline(ctx.config)
    if on_server:
        relay = _Relay(ctx, step)
        say = lambda message: ctx.event("output", step, f"  {message}")  # noqa: E731
        try:
            served = ingest_server.run(ctx.config, args, relay, timeout, say)
        except (ingest_server.IngestServerError, ServiceError) as exc:
            raise PipelineError(f"{step}: {exc}") from None
        started = int(served.started_server)
        run = relay.finish(served.code, served.timed_out)
    else:
        command = spark.spark_submit_command(
            ctx.config, str(PROJECT_ROOT / "jobs" / job), args, app_name=f"lakehouse-{step}"
        )
        started = 1
        run = stream_job(ctx, step, command, spark.spark_env(ctx.config), timeout)
    ctx.spark_applications += started
    result.profile = profiling.application_profile(run.announced, submitted_at, run.own_ended_at or time.time())
    if on_server:
        result.profile.update(spark_applications=started, ingest_server=True)
    if run.timed_out:
        raise PipelineError(job_timeout_message(ctx.config, job))
    return run


def job_timeout_message(config: Config, job: str) -> str:
    """One line for a Spark job stopped by pipeline.job_timeout_seconds."""
    seconds = config.pipeline.job_timeout_seconds
    return (
        f"spark-submit of jobs/{job} did not finish within {seconds} s (pipeline.job_timeout_seconds) and was "
        f"stopped; what it committed stays consistent, run it again (a longer job: raise the setting)"
    )


def submit_job(config: Config, job: str, args: list[str], *, app_name: str) -> int:
    """Run a job file under spark-submit with the project's conf; output goes to our terminal.

    A job running past ``pipeline.job_timeout_seconds`` is stopped and fails with one line.
    """

    def relay(line: str) -> None:
        if not line.startswith(profiling.PROFILE_MARK):  # for the pipeline's profile, not for a person
            print(line, flush=True)

    spark.write_spark_conf(config)
    command = spark.spark_submit_command(config, str(PROJECT_ROOT / "jobs" / job), args, app_name=app_name)
    finished = processes.stream(
        command, on_line=relay, timeout=config.pipeline.job_timeout_seconds, env=spark.spark_env(config)
    )
    if finished.timed_out:
        print(f"error: {job_timeout_message(config, job)}", file=sys.stderr)
        return 1
    return finished.code
