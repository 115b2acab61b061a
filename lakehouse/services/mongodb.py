"""The MongoDB-wire server for the content catalogue.

By default FerretDB v1 with its SQLite backend, built from source with Go by ``make setup``
(``tools/ferretdb``, pinned by go.sum) and run from the state directory on 127.0.0.1. With
``LAKEHOUSE_MONGODB_URI`` set, that server is used instead. The code only ever sees a URI.
"""

from __future__ import annotations

import os
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from lakehouse.config import PROJECT_ROOT, Config
from lakehouse.services.process import (
    ServiceError,
    ServiceStatus,
    check_port_free,
    read_pid,
    start_service,
    stop_service,
)

NAME = "mongodb"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_SOURCE = PROJECT_ROOT / "tools" / "ferretdb"
START_TIMEOUT_SECONDS = 30
PING_TIMEOUT_MS = 2000
BUILD_TIMEOUT_SECONDS = 1200


def binary_path(config: Config) -> Path:
    return config.cache_dir / "bin" / f"ferretdb-{FERRETDB_VERSION}"


def pid_file(config: Config) -> Path:
    return config.run_dir / "mongodb.pid"


def log_file(config: Config) -> Path:
    return config.log_dir / "mongodb.log"


def data_dir(config: Config) -> Path:
    return config.home / "mongodb"


def build_ferretdb(config: Config) -> Path:
    """Build FerretDB with Go into the cache (once). The Go module cache makes rebuilds fast."""
    from lakehouse.runtime.go_build import GoBuildError, go_build

    try:
        return go_build(
            FERRETDB_SOURCE,
            binary_path(config),
            what=f"mongodb: FerretDB {FERRETDB_VERSION}",
            timeout=BUILD_TIMEOUT_SECONDS,
            missing="or set LAKEHOUSE_MONGODB_URI to a MongoDB server",
        )
    except GoBuildError as exc:
        raise ServiceError(str(exc)) from None


def client(config: Config, timeout_ms: int = PING_TIMEOUT_MS) -> MongoClient:
    return MongoClient(config.mongodb.connection_uri, serverSelectionTimeoutMS=timeout_ms, connect=False)


def ping(config: Config) -> bool:
    try:
        with client(config) as mongo:
            mongo.admin.command("ping")
        return True
    except PyMongoError:
        return False


def start(config: Config) -> bool:
    mongo = config.mongodb
    if not mongo.embedded:
        if not ping(config):
            raise ServiceError(f"mongodb: cannot reach {mongo.display()} (LAKEHOUSE_MONGODB_URI)")
        return False
    pid = read_pid(pid_file(config))
    if pid is not None:
        return False
    check_port_free(mongo.host, mongo.port, "LAKEHOUSE_MONGODB_PORT")
    binary = binary_path(config)
    if not binary.exists():
        raise ServiceError(f"mongodb: FerretDB is not built at {binary}: run `make setup`")
    data_dir(config).mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "-listen",
        f"{mongo.host}:{mongo.port}",
        "-data-dir",
        str(data_dir(config)),
        "-log-level",
        "warn",
    ]
    start_service(
        command,
        log_file=log_file(config),
        pid_file=pid_file(config),
        env=dict(os.environ),
        ready=lambda: ping(config),
        timeout=START_TIMEOUT_SECONDS,
        what="mongodb (FerretDB)",
    )
    return True


def stop(config: Config) -> bool:
    return config.mongodb.embedded and stop_service(pid_file(config))


def status(config: Config) -> ServiceStatus:
    mongo = config.mongodb
    address = mongo.display()
    if not mongo.embedded:
        return ServiceStatus(NAME, "external" if ping(config) else "unreachable", address)
    pid = read_pid(pid_file(config))
    return ServiceStatus(NAME, "running" if pid else "stopped", address, pid=pid, log=log_file(config))
