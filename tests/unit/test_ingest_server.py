"""The ingest server's pieces that need no Spark: its address, the fingerprint that decides
whether a server may serve a run, the line protocol (tests/integration/test_ingest_server.py
runs the real server)."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import pytest

from lakehouse.config import Config, load_config
from lakehouse.pipeline import ingest_server
from lakehouse.services import ingest as ingest_service


@pytest.fixture
def config(tmp_path) -> Config:
    return load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "home")})


def test_a_server_serves_only_runs_with_its_own_settings_and_code(config: Config, tmp_path) -> None:
    assert ingest_server.fingerprint(config) == ingest_server.fingerprint(config)
    slower = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, job_timeout_seconds=9))
    assert ingest_server.fingerprint(slower) != ingest_server.fingerprint(config)
    # One server per state directory, in the abstract namespace (no socket file to leave behind).
    other = dataclasses.replace(config, home=tmp_path / "elsewhere")
    assert ingest_service.address(config).startswith("\0lakehouse-ingest-server-")
    assert ingest_service.address(other) != ingest_service.address(config)


def test_the_pipeline_uses_the_server_only_when_asked_and_on_a_local_master(config: Config) -> None:
    assert not ingest_server.for_pipeline(config)  # off by default
    on = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, ingest_server=True))
    assert ingest_server.for_pipeline(on) == on.spark.is_local
    cluster = dataclasses.replace(on, spark=dataclasses.replace(on.spark, master="spark://127.0.0.1:7077"))
    assert not ingest_server.for_pipeline(cluster)  # a cluster's driver: spark-submit as before


def test_output_lines_arrive_whole_then_the_exit_code() -> None:
    server, client = socket.socketpair()
    with server, client:
        sink = ingest_server.LineSink(server, threading.Event())
        print("extract postgres.users: rea", end="", file=sink)
        print("ding...", file=sink)
        print("second line", file=sink)
        server.sendall(f"{ingest_server.EXIT_MARK}3\n".encode())
        lines = ingest_server.read_lines(client, time.monotonic() + 5)
        assert [next(lines), next(lines)] == ["extract postgres.users: reading...", "second line"]
        assert ingest_server.exit_code(next(lines)) == 3
        assert ingest_server.exit_code("second line") is None
        server.close()
        with pytest.raises(ConnectionError, match="without an exit code"):
            next(lines)


def test_a_silent_server_times_out_and_a_gone_client_drops_the_output() -> None:
    server, client = socket.socketpair()
    with server, client:
        with pytest.raises(TimeoutError):
            next(ingest_server.read_lines(client, time.monotonic() + 0.2))
        gone = threading.Event()
        sink = ingest_server.LineSink(server, gone)
        client.close()
        print("nobody reads this", file=sink)
        print("nor this", file=sink)
        assert gone.is_set()  # the run goes on printing; nothing raises in it
