"""A warm Spark application for the pipeline's extract and validate (``pipeline.ingest_server``).

Each ``lakehouse pipeline`` run spark-submits jobs/ingest.py: a new JVM, a new SparkSession, the
Hive client and Delta's classes loaded and compiled again. On a small simulated day that is about
half of the two steps (measured on the 2-core machine: the same day's extract and gate in 69-82 s
in a just-started application, 38-43 s in one that had run a day before). With
``pipeline.ingest_server: true`` and a local Spark master, the pipeline sends the job to this
server instead: one spark-submit of jobs/ingest_server.py that keeps its application and runs
one ingest after the other, each in a new session of it (``newSession``: its own SQL settings
and temporary views), with the cache cleared after each.

- **How the pipeline reaches it**: a Unix socket in the abstract namespace, named after the
  state directory (no file; the server answers only processes of its own user, SO_PEERCRED).
  The pipeline sends the job's arguments and a fingerprint of its settings and of the project's
  code, and reads back the lines a spark-submit of jobs/ingest.py would print (the progress, the
  profile marks), then the exit code. The first run that finds no server starts one (its log:
  ``<home>/logs/ingest-server.log``); later runs find it warm.
- **One run at a time**: the server takes the next connection only when a run has ended. The
  writer lock stays the pipeline's.
- **A client that goes away cancels its run** (killed, or past ``pipeline.job_timeout_seconds``):
  the server cancels every Spark job until the run gives up. Delta's commits are atomic and the
  extract moves its watermarks last, so what a cancelled run committed stays consistent and
  the next run carries on, as after a killed spark-submit (tests/integration/test_bronze.py).
- **Other settings or code**: a request whose fingerprint differs from the server's makes the
  server exit; the pipeline starts a new one with its own.
- **Idle** for ``pipeline.ingest_server_idle_minutes``, the server exits and its memory is back.
  ``lakehouse down`` stops it, ``lakehouse status`` shows it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.errors import LakehouseError
from lakehouse.services.ingest import address, log_file, pid_file, running, stop

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXIT_MARK = "\x00lakehouse-ingest-exit "
RESTART_MARK = "\x00lakehouse-ingest-restart"
CODE_FOLDERS = ("lakehouse", "jobs", "expectations")
CANCEL_POLL_SECONDS = 0.5
FAILED = 4  # jobs/ingest.py's "could not run" exit code
CONNECT_TIMEOUT_SECONDS = 5.0


class IngestServerError(LakehouseError):
    """The ingest server could not be started or reached."""


def fingerprint(config: Config) -> str:
    """The settings and the project's code a server runs with: a request with another is not
    served by it (the server exits and the pipeline starts one with its own)."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode())
    for folder in CODE_FOLDERS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            digest.update(f"{path.relative_to(PROJECT_ROOT)} {path.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


# ------------------------------------------------------------------ the server (jobs/ingest_server.py)


class LineSink(io.TextIOBase):
    """sys.stdout and sys.stderr of a run: what it prints goes to the client, whole writes at a
    time (the extract's and the gate's threads print too). A client gone: the output is dropped."""

    def __init__(self, conn: socket.socket, gone: threading.Event) -> None:
        self._conn = conn
        self._gone = gone
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text and not self._gone.is_set():
            with self._lock:
                try:
                    self._conn.sendall(text.encode())
                except OSError:
                    self._gone.set()
        return len(text)


def _same_user(conn: socket.socket) -> bool:
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def _read_request(conn: socket.socket) -> dict | None:
    """The client's request; None when it closed without one (a check that the server listens)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            if data:
                raise ConnectionError("the client closed the connection in the middle of its request")
            return None
        data += chunk
    return json.loads(data)


def _watch(conn: socket.socket, spark: SparkSession, gone: threading.Event, done: threading.Event) -> None:
    """Cancel the run's Spark jobs once the client is gone, until the run gives up."""
    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR)
    while not done.is_set() and not gone.is_set():
        if poller.poll(CANCEL_POLL_SECONDS * 1000):
            try:
                closed = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                gone.set()
            else:
                time.sleep(CANCEL_POLL_SECONDS)  # nothing more is expected from the client
    while not done.is_set():
        spark.sparkContext.cancelAllJobs()
        done.wait(CANCEL_POLL_SECONDS)


def _serve_one(spark: SparkSession, config: Config, conn: socket.socket, request: dict, started: float) -> int:
    from lakehouse import profiling
    from lakehouse.pipeline.ingest import parse_args, run_job

    gone, done = threading.Event(), threading.Event()
    sink = LineSink(conn, gone)
    watcher = threading.Thread(target=_watch, args=(conn, spark, gone, done), name="client-watch", daemon=True)
    watcher.start()
    session = spark.newSession()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            minutes = (time.monotonic() - started) / 60
            print(f"extract: the ingest server's Spark session (pid {os.getpid()}, up {minutes:.0f} min)", flush=True)
            profiling.announce_session_ready()
            return run_job(session, config, parse_args(request["argv"]), stop_session=False)
    finally:
        done.set()
        watcher.join()
        spark.catalog.clearCache()
        if gone.is_set():
            print(f"ingest server: the client went away; its run {request['argv']} was cancelled", flush=True)


def serve(spark: SparkSession, config: Config, idle_seconds: float) -> None:
    """Serve ingest runs one after the other until idle for ``idle_seconds`` or another
    fingerprint asks (jobs/ingest_server.py)."""
    started = time.monotonic()
    mine = fingerprint(config)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(address(config))
        listener.listen(8)
        listener.settimeout(idle_seconds)
        print(f"ingest server: ready (pid {os.getpid()}); exits after {idle_seconds / 60:g} min idle", flush=True)
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                print("ingest server: idle, exits", flush=True)
                return
            with conn:
                conn.settimeout(None)
                if not _same_user(conn):
                    continue
                try:
                    request = _read_request(conn)
                except (ConnectionError, ValueError) as exc:
                    print(f"ingest server: a bad request ({exc})", flush=True)
                    continue
                if request is None:
                    continue
                if request.get("fingerprint") != mine:
                    with contextlib.suppress(OSError):
                        conn.sendall(f"{RESTART_MARK}\n".encode())
                    print("ingest server: a run with other settings or code; exits for a new server", flush=True)
                    return
                print(f"ingest server: run {request['argv']}", flush=True)
                try:
                    code = _serve_one(spark, config, conn, request, started)
                except (Exception, SystemExit) as exc:  # a run's fault, not the server's: serve the next
                    print(f"ingest server: the run failed: {exc!r}", flush=True)
                    code = FAILED
                with contextlib.suppress(OSError):
                    conn.sendall(f"{EXIT_MARK}{code}\n".encode())
                print(f"ingest server: run ended with exit code {code}", flush=True)


def main() -> int:
    """Entry point of jobs/ingest_server.py (spark-submit, local mode)."""
    import logging

    from lakehouse.config import load_config
    from lakehouse.spark import build_session

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config()
    spark = build_session(config, "lakehouse-ingest-server")
    try:
        serve(spark, config, config.pipeline.ingest_server_idle_minutes * 60)
    finally:
        spark.stop()
    return 0


# ------------------------------------------------------------------ the client (the pipeline)


def _connect(config: Config) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(CONNECT_TIMEOUT_SECONDS)
    try:
        conn.connect(address(config))
    except OSError:
        conn.close()
        return None
    return conn


def start(config: Config) -> None:
    """Start a server for this state directory and wait until it listens."""
    from lakehouse.services.process import start_background, wait_until
    from lakehouse.spark import spark_env, spark_submit_command, write_spark_conf

    write_spark_conf(config)
    command = spark_submit_command(
        config, str(PROJECT_ROOT / "jobs" / "ingest_server.py"), [], app_name="lakehouse-ingest-server"
    )
    start_background(command, log_file=log_file(config), pid_file=pid_file(config), env=spark_env(config))

    def listening() -> bool:
        conn = _connect(config)
        if conn is not None:
            conn.close()
        return conn is not None

    wait_until(
        listening,
        timeout=config.thrift.startup_timeout_seconds,
        what="the ingest server",
        alive=lambda: running(config),
        log_file=log_file(config),
    )


@dataclasses.dataclass(frozen=True)
class Finished:
    code: int
    timed_out: bool
    started_server: bool


def run(
    config: Config, argv: list[str], on_line: Callable[[str], None], timeout: float, say: Callable[[str], None]
) -> Finished:
    """Run jobs/ingest.py's work with ``argv`` on this state directory's server, each output line
    to ``on_line``; the server is started first when none listens, and again when the one that
    listens runs with other settings or code. Past ``timeout`` seconds the connection is closed
    (the server cancels the run) and the result says ``timed_out``."""
    request = (json.dumps({"argv": argv, "fingerprint": fingerprint(config)}) + "\n").encode()
    deadline = time.monotonic() + timeout
    started_server = False
    for _attempt in range(2):
        conn = _connect(config)
        if conn is None:
            if running(config):
                stop(config)  # alive but not listening: hung, or killed half-way through its start
            say("ingest server: starting it (a Spark application that stays up for the next runs)...")
            start(config)
            started_server = True
            conn = _connect(config)
            if conn is None:
                raise IngestServerError(f"the ingest server does not answer: see {log_file(config)}")
        with conn:
            conn.sendall(request)
            try:
                for line in read_lines(conn, deadline):
                    if line == RESTART_MARK:
                        break
                    code = exit_code(line)
                    if code is not None:
                        return Finished(code, False, started_server)
                    on_line(line)
            except TimeoutError:
                return Finished(1, True, started_server)
            except ConnectionError as exc:
                raise IngestServerError(f"{exc}: see {log_file(config)}") from None
        say("ingest server: it runs with other settings or code; starting a new one...")
        _wait_gone(config)
    raise IngestServerError(f"the ingest server refused the run twice: see {log_file(config)}")


def _wait_gone(config: Config, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while running(config) and time.monotonic() < deadline:
        time.sleep(0.2)
    if running(config):
        stop(config)


def read_lines(conn: socket.socket, deadline: float) -> Iterator[str]:
    """The server's lines as they come; TimeoutError past ``deadline`` (monotonic),
    ConnectionError when the server closed the connection."""
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        conn.settimeout(remaining)
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the ingest server closed the connection without an exit code")
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")


def exit_code(line: str) -> int | None:
    """The exit code an output line carries, or None for any other line."""
    if line.startswith(EXIT_MARK):
        return int(line[len(EXIT_MARK) :])
    return None


def for_pipeline(config: Config) -> bool:
    """Whether the pipeline sends its extract-and-validate to the server."""
    return config.pipeline.ingest_server and config.spark.is_local
