"""Run tests/integration and tests/e2e side by side, as two pytest processes.

The two layers share nothing at run time: tests/integration starts the session stack (in
``<state>/test``), tests/e2e starts a stack of its own from an empty state directory on free
ports and uses none of the session services. Run one after the other they take about 15 and
17 minutes; side by side the machine's idle time in each (JVM start-up, dbt's per-node round
trips, service start and stop) is the other's working time.

The integration layer prints as it goes; the e2e layer writes to ``<state>/reports/test-e2e.log``,
printed when both have finished. The exit status is 0 only when both layers passed (pytest's 5,
"no tests collected", is a failure too).

Usage: python tests/run_layers.py [pytest arguments...]   (what ``make test`` runs after the unit layer)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from lakehouse.config import PROJECT_ROOT, load_config

# The e2e process's own test home and ports, so the two processes never share a file or a port.
E2E_TEST_HOME_NAME = "test-e2e-layer"
E2E_PORT_OFFSET = "100"
INTERRUPT_GRACE_SECONDS = 300
# Each layer's pytest process must end within this (CI allows 90 minutes for everything);
# past it the layer is interrupted (its fixtures' teardowns stop its stack) and fails.
LAYER_TIMEOUT_SECONDS = 60 * 60


def _pytest(layer: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", f"tests/{layer}", *args]


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


def main(args: list[str]) -> int:
    home = load_config().home
    log_path = home / "reports" / "test-e2e.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    e2e_env = {
        **os.environ,
        "LAKEHOUSE_TEST_HOME": str(home / E2E_TEST_HOME_NAME),
        "LAKEHOUSE_TEST_PORT_OFFSET": E2E_PORT_OFFSET,
    }
    started = time.monotonic()
    print(f"tests/e2e runs beside tests/integration; its output goes to {log_path}", flush=True)
    deadline = started + LAYER_TIMEOUT_SECONDS
    with log_path.open("w") as log:
        e2e = subprocess.Popen(
            _pytest("e2e", args), cwd=PROJECT_ROOT, env=e2e_env, stdout=log, stderr=subprocess.STDOUT
        )
        integration = subprocess.Popen(_pytest("integration", args), cwd=PROJECT_ROOT)
        try:
            integration_status = _wait(integration, "integration", deadline)
            e2e_status = _wait(e2e, "e2e", deadline)
        except KeyboardInterrupt:
            # Ctrl-C reached both layers (one process group): each tears its stack down.
            for process in (integration, e2e):
                try:
                    process.wait(timeout=INTERRUPT_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
            raise
    print(f"\n{'=' * 30} tests/e2e ({log_path}) {'=' * 30}", flush=True)
    sys.stdout.write(log_path.read_text())
    minutes = (time.monotonic() - started) / 60
    print(
        f"\ntests/integration: exit {integration_status}; tests/e2e: exit {e2e_status}; "
        f"both layers in {minutes:.1f} min",
        flush=True,
    )
    return 0 if integration_status == 0 and e2e_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
