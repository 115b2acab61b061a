"""The ingest server as a local service: where it listens, its pid and log files, stop and
status (``lakehouse down``, ``lakehouse status``). What it is and how the pipeline uses it:
lakehouse/pipeline/ingest_server.py, which starts it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lakehouse.config import Config
from lakehouse.services.process import ServiceStatus, read_pid, stop_service

NAME = "ingest-server"


def address(config: Config) -> str:
    """The server's socket: abstract namespace (no file), one per state directory."""
    digest = hashlib.sha256(str(config.home.resolve()).encode()).hexdigest()[:20]
    return f"\0lakehouse-{NAME}-{digest}"


def pid_file(config: Config) -> Path:
    return config.run_dir / f"{NAME}.pid"


def log_file(config: Config) -> Path:
    return config.log_dir / f"{NAME}.log"


def running(config: Config) -> bool:
    return read_pid(pid_file(config)) is not None


def stop(config: Config) -> bool:
    return stop_service(pid_file(config))


def status(config: Config) -> ServiceStatus:
    pid = read_pid(pid_file(config))
    return ServiceStatus(NAME, "running" if pid else "stopped", "local socket", pid=pid, log=log_file(config))
