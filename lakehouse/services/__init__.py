"""Local services: PostgreSQL, the MongoDB-wire server, the Hive metastore schema, the Thrift server.

``up`` starts what is not running (in dependency order) and waits for health; ``down`` stops
only what ``up`` started (pid files), in reverse order, and leaves all data in place.
"""

from __future__ import annotations

from collections.abc import Callable

from lakehouse.config import Config
from lakehouse.services import metastore, mongodb, postgres, thrift
from lakehouse.services.process import ServiceError, ServiceStatus

SERVICES = ("postgres", "mongodb", "thrift")
_MODULES = {"postgres": postgres, "mongodb": mongodb, "thrift": thrift}

__all__ = ["SERVICES", "ServiceError", "ServiceStatus", "down", "status", "up"]


def up(config: Config, services: tuple[str, ...] = SERVICES, report: Callable[[str], None] = print) -> list[str]:
    """Start the given services (and what they need); return the names this call started."""
    wanted = set(services)
    if "thrift" in wanted:
        wanted.add("postgres")
    started = []
    for name in SERVICES:
        if name not in wanted:
            continue
        if name == "thrift":
            if metastore.ensure_schema(config):
                report("metastore: created the Hive metastore schema in PostgreSQL")
            if not thrift.running(config):
                report("thrift: starting the Spark Thrift Server (takes ~20 s)...")
        if _MODULES[name].start(config):
            started.append(name)
    return started


def down(config: Config, services: tuple[str, ...] = SERVICES) -> list[str]:
    """Stop the given services that this project started; return the names it stopped."""
    stopped = []
    for name in reversed(SERVICES):
        if name in services and _MODULES[name].stop(config):
            stopped.append(name)
    return stopped


def status(config: Config) -> list[ServiceStatus]:
    return [_MODULES[name].status(config) for name in SERVICES]
