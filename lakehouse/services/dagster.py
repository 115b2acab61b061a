"""Dagster's webserver and daemon for this state directory (``lakehouse dagster up``).

``dagster dev`` runs both (and the code server of ``lakehouse.orchestration.definitions``) as
one process group: started in the background, its pid in ``<home>/run/dagster.pid``, its log
in ``<home>/logs/dagster.log``, stopped by ``lakehouse dagster down`` or ``lakehouse down``.
Its instance (run history, schedules, sensors: SQLite) is ``<home>/dagster``
(``DAGSTER_HOME``), with the ``dagster.yaml`` written here: telemetry off, one run at a time
from the run queue, and one step at a time in the writers' pool (the writer lock still applies
to anything else that writes). ``serve`` is the same run in the foreground (the image's
``orchestrator`` role: the container's main process, its log on stdout, no pid file). This
module does not import Dagster: only the extra's executables are run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.services.process import (
    ServiceError,
    ServiceStatus,
    answers_http,
    check_port_free,
    read_pid,
    server_status,
    start_service,
    stop_service,
)

NAME = "dagster"
CODE_LOCATION = "lakehouse.orchestration.definitions"
HEALTH_PATH = "/server_info"
WRITER_POOL = "lakehouse_writer"  # lakehouse/orchestration/run.py

INSTANCE_YAML = """\
# Written by `lakehouse dagster up` (edits are overwritten): the Dagster instance of {home}.
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
  pools:
    default_limit: 1
"""


def home_dir(config: Config) -> Path:
    return config.home / "dagster"


def pid_file(config: Config) -> Path:
    return config.run_dir / "dagster.pid"


def log_file(config: Config) -> Path:
    return config.log_dir / "dagster.log"


def executable() -> Path:
    """``dagster`` next to this interpreter (the project's virtualenv with the extra)."""
    found = Path(sys.executable).parent / "dagster"
    if not found.exists():
        raise ServiceError("Dagster is not installed in this environment: `make dagster-extra` installs it")
    return found


def write_instance(config: Config) -> Path:
    home = home_dir(config)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    path.write_text(INSTANCE_YAML.format(home=config.home))
    return path


def command(config: Config) -> list[str]:
    o = config.orchestrator
    return [str(executable()), "dev", "-m", CODE_LOCATION, "--host", o.host, "--port", str(o.port)]


def environment(config: Config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(home_dir(config)),
            "LAKEHOUSE_HOME": str(config.home),
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p),
        }
    )
    return env


def healthy(config: Config) -> bool:
    server = config.orchestrator
    return answers_http(server.connect_host, server.port, server.url + HEALTH_PATH)


def _ready_to_serve(config: Config) -> tuple[list[str], dict[str, str]]:
    """The port is free, the instance's dagster.yaml is written: the command line and environment.

    What ``start`` (in the background) and ``serve`` (in the foreground) share."""
    line = command(config)  # first: without the extra, say so before touching anything
    check_port_free(config.orchestrator.connect_host, config.orchestrator.port, "LAKEHOUSE_ORCHESTRATOR_PORT")
    write_instance(config)
    return line, environment(config)


def start(config: Config) -> bool:
    """Start the webserver and daemon in the background unless they run; True when this call started them."""
    if read_pid(pid_file(config)) is not None:
        return False
    line, env = _ready_to_serve(config)
    start_service(
        line,
        log_file=log_file(config),
        pid_file=pid_file(config),
        env=env,
        ready=lambda: healthy(config),
        timeout=config.orchestrator.startup_timeout_seconds,
        what=f"Dagster at {config.orchestrator.url}",
    )
    return True


def serve(config: Config) -> NoReturn:
    """Become ``dagster dev`` in the foreground (a container's main process: no pid file, its log
    on stdout); ``start`` is the same run in the background."""
    line, env = _ready_to_serve(config)
    os.execve(line[0], line, env)


def stop(config: Config) -> bool:
    return stop_service(pid_file(config))


def status(config: Config) -> ServiceStatus:
    return server_status(NAME, pid_file(config), config.orchestrator.url, lambda: healthy(config), log_file(config))
