"""Run tests/unit, tests/integration and tests/e2e side by side, as three pytest processes.

The layers share nothing at run time: tests/unit uses no live service (plain local Spark),
tests/integration starts the session stack (in ``<state>/test``), tests/e2e starts a stack of
its own from an empty state directory on free ports and uses none of the session services.
Side by side the machine's idle time in each (JVM start-up, dbt's per-node round trips, service
start and stop) is the others' working time, and the unit layer (about 2 minutes) is not on
the critical path any more. A failure in tests/unit is printed as soon as that layer ends and
fails the run, but does not interrupt the other two (a layer stopped in the middle of a
fixture can leave its servers behind); `make test-unit` is the quick check.

The integration layer prints as it goes; the unit and e2e layers write to
``<state>/reports/test-unit.log`` and ``test-e2e.log``, each printed when it has finished. The
exit status is 0 only when every layer passed (pytest's 5, "no tests collected", is a failure
too).

Usage: python tests/run_layers.py [pytest arguments...]   (what ``make test`` runs)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lakehouse.config import PROJECT_ROOT, load_config

# The e2e process's own test home and ports, so the two processes never share a file or a port.
E2E_TEST_HOME_NAME = "test-e2e-layer"
E2E_PORT_OFFSET = "100"
INTERRUPT_GRACE_SECONDS = 300
# Each layer's pytest process must end within this (CI allows 90 minutes for everything);
# past it the layer is interrupted (its fixtures' teardowns stop its stack) and fails.
LAYER_TIMEOUT_SECONDS = 60 * 60


def _pytest(layer: str, args: list[str]) -> list[str]:
    """The layer's pytest command, with a temporary directory of its own (pytest rotates its
    shared numbered ones, keeping three: a fourth pytest on the machine would delete a running
    layer's server data)."""
    own = [] if any(a.startswith("--basetemp") for a in args) else [f"--basetemp={_basetemp(layer)}"]
    return [sys.executable, "-m", "pytest", f"tests/{layer}", *own, *args]


def _basetemp(layer: str) -> Path:
    """pytest makes the directory (emptying it first) but not its parent."""
    parent = load_config().home / "test-tmp"
    parent.mkdir(parents=True, exist_ok=True)
    return parent / layer


def _stop(process: subprocess.Popen) -> None:
    """SIGINT (pytest tears its fixtures down), then SIGKILL after the grace period."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=INTERRUPT_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait(process: subprocess.Popen, layer: str, deadline: float) -> int:
    """The layer's exit status; interrupted and failed (1) when it runs past the deadline."""
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        print(
            f"tests/{layer} did not finish within {LAYER_TIMEOUT_SECONDS // 60} min "
            "(tests/run_layers.py LAYER_TIMEOUT_SECONDS) and was interrupted",
            flush=True,
        )
        _stop(process)
        return 1


def _start(layer: str, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log = log_path.open("w")
    try:
        return subprocess.Popen(_pytest(layer, args), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()  # the child holds its own copy


def _show(layer: str, log_path: Path) -> None:
    print(f"\n{'=' * 30} tests/{layer} ({log_path}) {'=' * 30}", flush=True)
    sys.stdout.write(log_path.read_text())
    sys.stdout.flush()


def main(args: list[str]) -> int:
    home = load_config().home
    reports = home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    unit_log, e2e_log = reports / "test-unit.log", reports / "test-e2e.log"
    e2e_env = {
        **os.environ,
        "LAKEHOUSE_TEST_HOME": str(home / E2E_TEST_HOME_NAME),
        "LAKEHOUSE_TEST_PORT_OFFSET": E2E_PORT_OFFSET,
    }
    started = time.monotonic()
    print(
        f"tests/unit, tests/integration and tests/e2e run side by side; tests/unit's output goes to "
        f"{unit_log} and tests/e2e's to {e2e_log} (both printed here when they end)",
        flush=True,
    )
    deadline = started + LAYER_TIMEOUT_SECONDS
    unit = _start("unit", args, unit_log)
    e2e = _start("e2e", args, e2e_log, e2e_env)
    integration = subprocess.Popen(_pytest("integration", args), cwd=PROJECT_ROOT)
    try:
        unit_status = _wait(unit, "unit", deadline)
        _show("unit", unit_log)
        if unit_status != 0:
            # Not interrupted: a layer stopped in the middle can leave its stack's servers
            # behind. The run fails at the end whatever the others do.
            print(
                f"\ntests/unit: exit {unit_status}: this run fails; tests/integration and tests/e2e go on "
                "(Ctrl-C stops them, each tearing its stack down)",
                flush=True,
            )
        integration_status = _wait(integration, "integration", deadline)
        e2e_status = _wait(e2e, "e2e", deadline)
    except KeyboardInterrupt:
        # Ctrl-C reached every layer (one process group): each tears its stack down.
        for process in (unit, integration, e2e):
            try:
                process.wait(timeout=INTERRUPT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
        raise
    _show("e2e", e2e_log)
    minutes = (time.monotonic() - started) / 60
    print(
        f"\ntests/unit: exit {unit_status}; tests/integration: exit {integration_status}; "
        f"tests/e2e: exit {e2e_status}; all layers in {minutes:.1f} min",
        flush=True,
    )
    return 0 if unit_status == 0 and integration_status == 0 and e2e_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
