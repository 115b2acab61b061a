"""Run the test suite as four pytest processes side by side: tests/unit, tests/integration in
two shards, and tests/e2e.

The processes share nothing at run time: tests/unit uses no live service (plain local Spark);
each integration shard starts a session stack of its own, and tests/e2e one more from an empty
state directory, each in its own state directory and on its own ports. Side by side the
machine's idle time in each (JVM start-up, dbt's per-node round trips, service start and stop)
is the others' working time. The integration layer is split because one process of it was the
longest of the suite by minutes: the extract's own tests (test_bronze.py: every source table's
full load, crash points, late and future rows; test_cluster.py: a standalone cluster;
test_ingest.py: extract and validate in one session; test_orchestration.py: the Dagster graph in
process and its gold against the CLI's, placed here because this shard ends minutes before the
others) form one shard, every other file of tests/integration the second (a new file lands there
by default).

A failure in tests/unit is printed as soon as that layer ends and fails the run, but does not
interrupt the others (a process stopped in the middle of a fixture can leave its servers
behind); `make test-unit` is the quick check.

The main integration shard prints as it goes; every other process writes to
``<state>/reports/test-<name>.log``, printed when it has finished. The exit status is 0 only
when every process passed (pytest's 5, "no tests collected", is a failure too).

Usage: python tests/run_layers.py [pytest arguments...]   (what ``make test`` runs)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import PROJECT_ROOT, load_config

INTERRUPT_GRACE_SECONDS = 300
# Each pytest process must end within this (CI allows 90 minutes for everything); past it the
# process is interrupted (its fixtures' teardowns stop its stack) and fails.
LAYER_TIMEOUT_SECONDS = 60 * 60
# The extract shard of tests/integration (see the module docstring).
EXTRACT_SHARD = (
    "tests/integration/test_bronze.py",
    "tests/integration/test_cluster.py",
    "tests/integration/test_ingest.py",
    "tests/integration/test_orchestration.py",
)


@dataclass(frozen=True)
class Run:
    """One pytest process of the suite."""

    name: str  # also its log's and its temporary directory's name
    paths: tuple[str, ...]
    options: tuple[str, ...] = ()
    # A stack of its own: its test home's name under the state directory and its port offset
    # (tests/conftest.py); None for the unit layer and for the shard on the default ones.
    home: str | None = None
    port_offset: str | None = None
    live: bool = False  # printed as it goes instead of into its log
    env: dict[str, str] = field(default_factory=dict)


RUNS = (
    Run("unit", ("tests/unit",)),
    Run("integration-extract", EXTRACT_SHARD, home="test-extract-shard", port_offset="200"),
    Run("integration", ("tests/integration",), tuple(f"--ignore={p}" for p in EXTRACT_SHARD), live=True),
    Run("e2e", ("tests/e2e",), home="test-e2e-layer", port_offset="100"),
)


def _pytest(run: Run, args: list[str]) -> list[str]:
    """The run's pytest command, with a temporary directory of its own (pytest rotates its
    shared numbered ones, keeping three: a fourth pytest on the machine would delete a running
    process's server data)."""
    own = [] if any(a.startswith("--basetemp") for a in args) else [f"--basetemp={_basetemp(run.name)}"]
    return [sys.executable, "-m", "pytest", *run.paths, *run.options, *own, *args]


def _basetemp(name: str) -> Path:
    """pytest makes the directory (emptying it first) but not its parent."""
    parent = load_config().home / "test-tmp"
    parent.mkdir(parents=True, exist_ok=True)
    return parent / name


def _environment(run: Run, home: Path) -> dict[str, str]:
    env = {**os.environ, **run.env}
    if run.home is not None:
        env["LAKEHOUSE_TEST_HOME"] = str(home / run.home)
    if run.port_offset is not None:
        env["LAKEHOUSE_TEST_PORT_OFFSET"] = run.port_offset
    return env


def _stop(process: subprocess.Popen) -> None:
    """SIGINT (pytest tears its fixtures down), then SIGKILL after the grace period."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait(process: subprocess.Popen, name: str, deadline: float) -> int:
    """The process's exit status; interrupted and failed (1) when it runs past the deadline."""
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        print(
            f"tests: {name} did not finish within {LAYER_TIMEOUT_SECONDS // 60} min "
            "(tests/run_layers.py LAYER_TIMEOUT_SECONDS) and was interrupted",
            flush=True,
        )
        _stop(process)
        return 1


def _start(run: Run, args: list[str], home: Path, log_path: Path) -> subprocess.Popen:
    command, env = _pytest(run, args), _environment(run, home)
    if run.live:
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    log = log_path.open("w")
    try:
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()  # the child holds its own copy


def _show(name: str, log_path: Path) -> None:
    print(f"\n{'=' * 30} {name} ({log_path}) {'=' * 30}", flush=True)
    sys.stdout.write(log_path.read_text())
    sys.stdout.flush()


def main(args: list[str]) -> int:
    home = load_config().home
    reports = home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    logs = {run.name: reports / f"test-{run.name}.log" for run in RUNS}
    started = time.monotonic()
    print(
        "tests: "
        + ", ".join(run.name for run in RUNS)
        + " run side by side; "
        + "; ".join(f"{run.name}'s output goes to {logs[run.name]}" for run in RUNS if not run.live)
        + " (each printed here when it ends)",
        flush=True,
    )
    deadline = started + LAYER_TIMEOUT_SECONDS
    processes = {run.name: _start(run, args, home, logs[run.name]) for run in RUNS}
    statuses: dict[str, int] = {}
    try:
        # Waited for in the order of RUNS: the unit layer, the shortest, is reported first.
        for run in RUNS:
            statuses[run.name] = _wait(processes[run.name], run.name, deadline)
            if not run.live:
                _show(run.name, logs[run.name])
            if statuses[run.name] != 0:
                # Not interrupting the others: a process stopped in the middle can leave its
                # stack's servers behind. The run fails at the end whatever the others do.
                print(f"\ntests: {run.name}: exit {statuses[run.name]}: this run fails; the others go on", flush=True)
    except KeyboardInterrupt:
        # Ctrl-C reached every process (one process group): each tears its stack down.
        for process in processes.values():
            try:
                process.wait(timeout=INTERRUPT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
        raise
    minutes = (time.monotonic() - started) / 60
    print(
        "\ntests: "
        + "; ".join(f"{name}: exit {status}" for name, status in statuses.items())
        + f"; all in {minutes:.1f} min",
        flush=True,
    )
    return 0 if all(status == 0 for status in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
