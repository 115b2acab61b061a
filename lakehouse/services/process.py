"""Starting, watching and stopping background processes through pid files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import LakehouseError

POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 1.0


class ServiceError(LakehouseError):
    """A service could not be started, reached or stopped; the message is one readable line."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running, stopped, external, unreachable
    address: str
    pid: int | None = None
    log: Path | None = None
    detail: str = ""


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def answers_http(host: str, port: int, url: str) -> bool:
    """True when a web server listens at host:port and ``url`` answers 200 (a health endpoint)."""
    import urllib.request

    if not port_open(host, port):
        return False
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def check_port_free(host: str, port: int, setting: str) -> None:
    """Fail with a one-line message naming the port and the setting to change."""
    if port_open(host, port):
        raise ServiceError(
            f"port {port} on {host} is already in use by another program: "
            f"set {setting} to a free port (or stop that program)"
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def read_pid(pid_file: Path) -> int | None:
    """The pid in pid_file if that process is alive; a stale file is removed."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def start_background(command: list[str], *, log_file: Path, pid_file: Path, env: dict[str, str]) -> int:
    """Start command in its own session, output appended to log_file; record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def start_service(
    command: list[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: dict[str, str],
    ready: Callable[[], bool],
    timeout: float,
    what: str,
) -> int:
    """:func:`start_background`, then wait until ``ready()``: fails at once, naming the log,
    when the process exits first; its pid."""
    pid = start_background(command, log_file=log_file, pid_file=pid_file, env=env)
    wait_until(ready, timeout=timeout, what=what, alive=lambda: read_pid(pid_file) is not None, log_file=log_file)
    return pid


def server_status(
    name: str, pid_file: Path, address: str, healthy: Callable[[], bool], log_file: Path
) -> ServiceStatus:
    """A server started with :func:`start_service`: stopped, starting (alive, not healthy yet) or running."""
    pid = read_pid(pid_file)
    state = "stopped" if pid is None else "running" if healthy() else "starting"
    return ServiceStatus(name, state, address, pid=pid, log=log_file)


def stop_service(pid_file: Path) -> bool:
    """Stop the process group a pid file names and remove the file; False when none runs."""
    pid = read_pid(pid_file)
    if pid is None:
        return False
    stop_pid(pid)
    pid_file.unlink(missing_ok=True)
    return True


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM the process group, then SIGKILL it if it does not exit in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not pid_alive(pid):
                return
            time.sleep(POLL_SECONDS)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log_file: Path | None = None,
) -> None:
    """Poll ready() until it is true; fail early if the process died, naming its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if alive is not None and not alive():
            hint = f": see {log_file}" if log_file else ""
            raise ServiceError(f"{what} exited during start-up{hint}")
        time.sleep(POLL_SECONDS)
    hint = f": see {log_file}" if log_file else ""
    raise ServiceError(f"{what} did not become ready within {timeout:.0f} s{hint}")


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
