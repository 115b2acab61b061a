"""One writer at a time: the lock every command that writes bronze, silver or gold holds.

Two locks, taken in this order and held until the command ends:

``run_lock`` (a file lock, ``<home>/run/pipeline.lock``)
    one state directory on one machine. Taken first, before anything starts: the pipeline's
    ``up`` step starts PostgreSQL itself. A lock left by a killed run is released by the kernel
    with the process and taken over.
``shared_lock`` (a PostgreSQL advisory lock in the metastore database)
    everything that shares the metastore, i.e. the same lakehouse: other machines, and compose
    containers whose state directories are not shared. The lock lives as long as the session
    that took it, so a killed holder frees it too. The session's ``application_name`` names the
    holder (``lakehouse extract, pid 4711 on host-a``), which a refusal quotes from
    ``pg_stat_activity``.

``lakehouse pipeline`` takes ``shared_lock`` right after its ``up`` step; ``extract``,
``validate``, ``transform`` and ``quarantine`` take both at their start. A second writer fails
at once naming the holder, or with ``--wait`` (pipeline) queues behind it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator

from lakehouse.config import Config
from lakehouse.errors import LakehouseError

LOCK_POLL_SECONDS = 2.0
# pg_try_advisory_lock(int, int): the lakehouse's writer lock (pg_locks: classid, objid).
ADVISORY_KEY = (0x4C4B, 1)
APPLICATION_NAME_CHARS = 63  # PostgreSQL truncates application_name to NAMEDATALEN - 1


class LockedError(LakehouseError):
    """Another writer holds the lock."""


def _check_deadline(config: Config, deadline: float, holder: str) -> None:
    """--wait queues for at most pipeline.lock_wait_seconds: then it fails, naming the holder."""
    if time.monotonic() >= deadline:
        raise LockedError(
            f"waited {config.pipeline.lock_wait_seconds} s (pipeline.lock_wait_seconds) for the writer lock, "
            f"still held by {holder}"
        )


def holder_name(command: str) -> str:
    """What pg_stat_activity shows for the lock's session: the command, its pid and host."""
    return f"lakehouse {command}, pid {os.getpid()} on {socket.gethostname()}"[:APPLICATION_NAME_CHARS]


@contextlib.contextmanager
def run_lock(config: Config, *, wait: bool, notify: Callable[[str], None]) -> Iterator[None]:
    """The file lock of this state directory, for the whole command."""
    path = config.run_dir / "pipeline.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the run
    deadline = time.monotonic() + config.pipeline.lock_wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                if not wait:
                    raise LockedError(
                        f"another pipeline is running (pid {holder}); wait for it, or use --wait to queue"
                    ) from None
                _check_deadline(config, deadline, f"the pipeline of pid {holder}")
                time.sleep(LOCK_POLL_SECONDS)
        handle.seek(0)
        previous = handle.read().strip()
        if previous and previous != str(os.getpid()):
            notify(f"taking over the lock left by an earlier run (pid {previous}, no longer running)")
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        handle.close()


def _holder(cursor) -> str:
    cursor.execute(
        "select a.application_name, a.client_addr, a.backend_start from pg_locks l "
        "join pg_stat_activity a on a.pid = l.pid "
        "where l.locktype = 'advisory' and l.classid = %s and l.objid = %s and l.objsubid = 2 and l.granted",
        ADVISORY_KEY,
    )
    row = cursor.fetchone()
    if row is None:
        return "a session that has just ended"
    name, address, since = row
    where = f" from {address}" if address else ""
    return f"{name or 'an unnamed session'}{where}, since {since:%Y-%m-%d %H:%M:%S %Z}".rstrip()


@contextlib.contextmanager
def shared_lock(config: Config, command: str, *, wait: bool, notify: Callable[[str], None]) -> Iterator[None]:
    """The lakehouse's advisory lock in the metastore database, for the whole command."""
    from lakehouse.services import postgres
    from lakehouse.services.process import ServiceError

    try:
        conn = postgres.connect(config, config.postgres.metastore_database, application_name=holder_name(command))
    except ServiceError as exc:
        raise LockedError(f"cannot take the writer lock: {exc}: start it with `lakehouse up`") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            announced = False
            deadline = time.monotonic() + config.pipeline.lock_wait_seconds
            while True:
                cursor.execute("select pg_try_advisory_lock(%s, %s)", ADVISORY_KEY)
                if cursor.fetchone()[0]:
                    break
                holder = _holder(cursor)
                if not wait:
                    raise LockedError(
                        f"another command writes this lakehouse: {holder}; run again when it has finished "
                        "(`lakehouse pipeline --wait` queues behind it)"
                    )
                if not announced:
                    notify(f"waiting for the writer lock, held by {holder}")
                    announced = True
                _check_deadline(config, deadline, holder)
                time.sleep(LOCK_POLL_SECONDS)
        yield
    finally:
        conn.close()  # ends the session, which releases the lock


@contextlib.contextmanager
def writer_lock(config: Config, command: str, *, wait: bool, notify: Callable[[str], None]) -> Iterator[None]:
    """Both locks, for a command that needs the services up already (not the pipeline)."""
    with run_lock(config, wait=wait, notify=notify), shared_lock(config, command, wait=wait, notify=notify):
        yield
