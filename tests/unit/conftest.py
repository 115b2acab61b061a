"""The unit layer: a plain local SparkSession, no services, no network.

``spark`` here is Spark alone (``local[2]``, the in-memory catalog, one shuffle partition, no
UI, UTC): no Hive, no metastore, no Delta, no PostgreSQL, FerretDB or Thrift server. Asking
for ``services`` fails. Sockets may only connect to the loopback interface (Spark's own
driver/Python traffic), so a unit test that reaches for the network fails at once.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest
from lakehouse_testing import TEST_JAVA_OPTIONS

_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _loopback_only(address: object) -> None:
    """Refuse a connection to anything but 127.0.0.0/8, ::1 or a Unix socket."""
    if not isinstance(address, tuple):
        return  # AF_UNIX path
    host = str(address[0])
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise OSError(f"unit tests use no network: connection to {host}:{address[1]} refused (tests/unit/conftest.py)")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _loopback_only(address)
    return _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _loopback_only(address)
    return _connect_ex(self, address)


@pytest.fixture(scope="session", autouse=True)
def no_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _connect  # type: ignore[method-assign]
        socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def services() -> None:
    pytest.fail("unit tests use no live service: move this test to tests/integration")


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """Plain Spark for pure transformations on small inline frames."""
    # Not the project's rendered conf directory (Hive, Delta, the metastore), whatever the shell has.
    os.environ.pop("SPARK_CONF_DIR", None)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("lakehouse-unit-tests")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("unit-warehouse")))
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.extraJavaOptions", TEST_JAVA_OPTIONS)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
