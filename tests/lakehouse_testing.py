"""Helpers shared by the test layers (importable: tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator

import pytest

# Tiny data: the C1 compiler alone and the serial collector start and warm up a JVM faster
# than the tiered C2 compiler and G1, which only pay off on long, large jobs. With C1 alone the
# JVM reserves only 48 MB of code cache: the run's one Thrift server filled it halfway through
# the suite ("Out of space in CodeCache for adapters"), so the cache gets the tiered default.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m"


@contextlib.contextmanager
def alarm(what: str, seconds: float, setting: str) -> Iterator[None]:
    """Fail the test when the block (in the main thread) outlives ``seconds``: the stacks of all
    threads are dumped first, and the failure names ``what`` was waited for and where its limit
    is set. The exception unwinds the block, so its ``finally`` clauses (a stack's stop) run.

    Inside a test's body pytest-timeout's alarm is armed already: it bounds the block instead.
    """
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        pytest.fail(f"{what} did not finish within {seconds:g} s ({setting})", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def in_ci() -> bool:
    """CI runs `.ci/run` with CI=true."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless_ci(message: str) -> None:
    """Skip on a developer's machine, fail in CI: a check that did not run must not look passed."""
    if in_ci():
        pytest.fail(f"{message}; CI=true needs it")
    pytest.skip(message)


@contextlib.contextmanager
def local_zone(name: str) -> Iterator[None]:
    """The Python process's local time zone (a laptop's clock) for the block, then back."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
