"""Who waits for whom on the Thrift server: FAIR scheduler pools and per-query time limits.

The server schedules with ``spark.scheduler.mode=FAIR`` and the pools of
``conf/fairscheduler.xml``:

    bi   every session by default (BI tools, ``lakehouse sql``): its tasks go first, and a
         query running longer than ``thrift.bi_query_timeout_seconds`` is cancelled by the server
    etl  the project's own sessions (dbt, the pipeline's maintain and audit statements): no
         per-query limit on the server (``dbt.timeout_seconds`` and
         ``thrift.query_timeout_seconds`` bound them on the client side)

A session chooses its pool and limit when it opens, through the HiveServer2 session
configuration (``set:hiveconf:<key>``; a plain key is ignored by the server), or later with
``SET``. Nothing stops a BI user from moving to ``etl``: pools share the server fairly, they
are not a security boundary.
"""

from __future__ import annotations

from lakehouse.config import PROJECT_ROOT, Config

ALLOCATION_FILE = PROJECT_ROOT / "conf" / "fairscheduler.xml"
BI_POOL = "bi"
ETL_POOL = "etl"
POOL_KEY = "spark.sql.thriftserver.scheduler.pool"
QUERY_TIMEOUT_KEY = "spark.sql.thriftServer.queryTimeout"
# HiveServer2 applies only session configuration keys with this prefix to the Spark session.
SESSION_CONF_PREFIX = "set:hiveconf:"


def server_conf(config: Config) -> dict[str, str]:
    """The Thrift server's --conf settings for scheduling: FAIR, the pools, the BI defaults."""
    return {
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(ALLOCATION_FILE),
        POOL_KEY: BI_POOL,
        QUERY_TIMEOUT_KEY: f"{config.thrift.bi_query_timeout_seconds}s",
        # A cancelled or timed-out query interrupts its running tasks: its cores are free at once.
        "spark.sql.thriftServer.interruptOnCancel": "true",
    }


def etl_session_settings() -> dict[str, str]:
    """The settings of an ETL session: the etl pool, no per-query limit on the server."""
    return {POOL_KEY: ETL_POOL, QUERY_TIMEOUT_KEY: "0"}


def etl_session_configuration() -> dict[str, str]:
    """etl_session_settings() as the session configuration of a HiveServer2 OpenSession."""
    return {f"{SESSION_CONF_PREFIX}{key}": value for key, value in etl_session_settings().items()}
