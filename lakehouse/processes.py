"""Child commands with a deadline: spark-submit jobs, dbt, the CLI in the bench.

Every child runs in a process group of its own, so a deadline or Ctrl-C stops all of it
(spark-submit's JVM and the Python driver it starts), and its output is handed over line by
line as it comes. Nothing waits forever: a command that outlives its ``timeout`` is stopped
(SIGTERM to the group, SIGKILL after a grace period) and reported as timed out, and the caller
says in one line what it waited for and which setting bounds it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lakehouse.errors import LakehouseError

STOP_GRACE_SECONDS = 30


@dataclass(frozen=True)
class Finished:
    """How a child command ended: its exit code, and whether the deadline stopped it."""

    code: int
    timed_out: bool = False


class CommandTimeout(LakehouseError):
    """A child command ran past its deadline and was stopped; the message names it."""


def stop_group(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the child's process group, then SIGKILL it after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def stream(
    command: Sequence[str],
    *,
    on_line: Callable[[str], None],
    timeout: float | None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    grace: float = STOP_GRACE_SECONDS,
) -> Finished:
    """Run ``command``, passing each output line (stdout and stderr, without its newline) to
    ``on_line``; stop it after ``timeout`` seconds (None: no deadline)."""
    with subprocess.Popen(
        list(command),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    ) as process:
        assert process.stdout is not None
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            stop_group(process, grace)

        timer = threading.Timer(timeout, expire) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        try:
            for line in process.stdout:
                on_line(line.rstrip("\n"))
        except BaseException:
            stop_group(process, grace)
            raise
        finally:
            if timer:
                timer.cancel()
        code = process.wait()
    return Finished(code, expired.is_set())


def run(
    command: Sequence[str], *, timeout: float, what: str, setting: str, env: dict[str, str] | None = None, cwd=None
) -> subprocess.CompletedProcess:
    """Run ``command`` to its end and capture its output; raise :class:`CommandTimeout`, naming
    ``what`` was waited for and the ``setting`` that bounds it, when it outlives ``timeout``."""
    lines: list[str] = []
    finished = stream(command, on_line=lines.append, timeout=timeout, env=env, cwd=cwd)
    if finished.timed_out:
        raise CommandTimeout(f"{what} did not finish within {timeout:.0f} s ({setting}) and was stopped")
    return subprocess.CompletedProcess(list(command), finished.code, "\n".join(lines) + "\n", "")


T = TypeVar("T")


def within(seconds: float, what: str, setting: str, call: Callable[[], T]) -> T:
    """``call()`` in a daemon thread, its result or exception; TimeoutError naming ``what`` and
    ``setting`` when it has not answered within ``seconds`` (the thread is left to finish)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run_call() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    worker = threading.Thread(target=run_call, name=what, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"{what} got no answer within {seconds:g} s ({setting})")
    if failure:
        raise failure[0]
    return outcome[0]
