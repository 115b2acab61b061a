"""Local services: PostgreSQL, the MongoDB-wire server, the Hive metastore schema, the object
store of an s3a:// warehouse (SeaweedFS), the Thrift server.

``up`` starts what is not running (in dependency order) and waits for health; ``down`` stops
only what ``up`` started (pid files), in reverse order, and leaves all data in place.
"""

from __future__ import annotations

from collections.abc import Callable

from lakehouse.config import Config
from lakehouse.services import ingest, metastore, mongodb, objectstore, postgres, thrift
from lakehouse.services.process import ServiceError, ServiceStatus

SERVICES = ("postgres", "mongodb", "objectstore", "thrift")
_MODULES = {"postgres": postgres, "mongodb": mongodb, "objectstore": objectstore, "thrift": thrift}

__all__ = ["SERVICES", "ServiceError", "ServiceStatus", "down", "status", "up"]


def up(config: Config, services: tuple[str, ...] = SERVICES, report: Callable[[str], None] = print) -> list[str]:
    """Start the given services (and what they need); return the names this call started."""
    wanted = set(services)
    if "thrift" in wanted:
        wanted |= {"postgres", "objectstore"}
    started = []
    checked = False
    for name in SERVICES:
        if name not in wanted:
            continue
        if name in ("objectstore", "thrift") and "thrift" in wanted and not checked:
            # Before the object store starts: a lakehouse built on another store is refused first.
            if metastore.ensure_schema(config):
                report("metastore: created the Hive metastore schema in PostgreSQL")
            metastore.check_warehouse(config)
            checked = True
        if name == "thrift" and not thrift.running(config):
            report("thrift: starting the Spark Thrift Server (takes ~20 s)...")
        if _MODULES[name].start(config):
            started.append(name)
    return started


def down(config: Config, services: tuple[str, ...] = SERVICES) -> list[str]:
    """Stop the given services that this project started; return the names it stopped."""
    stopped = []
    if {"postgres", "thrift"} & set(services) and ingest.stop(config):
        stopped.append(ingest.NAME)  # started by a pipeline run (pipeline.ingest_server)
    for name in reversed(SERVICES):
        if name in services and _MODULES[name].stop(config):
            stopped.append(name)
    return stopped


def status(config: Config) -> list[ServiceStatus]:
    """Every service's state; the object store only when the warehouse is on one."""
    found = [_MODULES[name].status(config) for name in SERVICES if name != "objectstore" or config.on_object_store]
    if config.pipeline.ingest_server or ingest.running(config):
        found.append(ingest.status(config))
    return found
