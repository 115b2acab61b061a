"""Shared fixtures: one set of live services and one SparkSession for the whole test run.

The tests run in their own state directory (``<state>/test``) on their own ports, so a
`make pipeline` stack on the default ports keeps running untouched. The directory is wiped
at the start of a run, and every service the run starts is stopped at its end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.config import PROJECT_ROOT, Config, load_config

# Two test runs on one machine need LAKEHOUSE_TEST_PORT_OFFSET and LAKEHOUSE_TEST_HOME.
_OFFSET = int(os.environ.get("LAKEHOUSE_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {
    "LAKEHOUSE_POSTGRES_PORT": str(25432 + _OFFSET),
    "LAKEHOUSE_MONGODB_PORT": str(27027 + _OFFSET),
    "LAKEHOUSE_THRIFT_PORT": str(10010 + _OFFSET),
}


def _test_environment() -> dict[str, str]:
    """Environment overrides that point every component at the test state directory."""
    base = load_config()
    env = {
        "LAKEHOUSE_HOME": os.environ.get("LAKEHOUSE_TEST_HOME", str(base.home / "test")),
        # Jars and the FerretDB build are shared with the normal state directory.
        "LAKEHOUSE_CACHE_DIR": str(base.cache_dir),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_SPARK_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_SPARK_DELTA_SNAPSHOT_PARTITIONS": "2",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_THRIFT_DRIVER_MEMORY": "1g",
        **TEST_PORTS,
    }
    for name in ("LAKEHOUSE_POSTGRES_URL", "LAKEHOUSE_MONGODB_URI", "LAKEHOUSE_POSTGRES_PASSWORD"):
        os.environ.pop(name, None)
    return env


@pytest.fixture(scope="session")
def config() -> Iterator[Config]:
    """The test run's config; the environment is set so CLI subprocesses see the same."""
    env = _test_environment()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cfg = load_config()
    yield cfg
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def services(config: Config) -> Iterator[Config]:
    """PostgreSQL, FerretDB and the Thrift server, started once from an empty state directory."""
    from lakehouse import services as svc

    svc.down(config)
    # Start from nothing, but keep the password file so the config object stays valid.
    for child in config.home.iterdir() if config.home.exists() else []:
        if child.name != "secrets":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    try:
        svc.up(config, report=lambda _msg: None)
        yield config
    finally:
        svc.down(config)


@pytest.fixture(scope="session")
def spark(services: Config):
    """The project's SparkSession (Delta, shared metastore) for the whole run."""
    from lakehouse.spark import build_session

    session = build_session(services, "lakehouse-tests")
    yield session
    session.stop()


def run_cli(*args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `lakehouse` command as a user would, in the current (test) environment."""
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        cwd=PROJECT_ROOT,
    )


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


def prepare_tiny_bronze(spark, config: Config, out_dir: Path, *, seed: int = 42) -> dict:
    """Fresh state: tiny sources generated and loaded, bronze and ops rebuilt by an extract.

    Returns the generator's manifest (with ``data_dir`` added). Modules that change the state
    (simulate, injected defects) call this again in their own fixture instead of sharing it.
    """
    from lakehouse.bronze.extract import run_extract
    from lakehouse.sources.generate import generate
    from lakehouse.sources.load import load_sources

    manifest = generate(out_dir, scale="tiny", seed=seed)
    load_sources(config, out_dir, replace=True, progress=lambda _m: None)
    for schema in ("bronze", "ops"):
        spark.sql(f"drop database if exists {schema} cascade")
    records = run_extract(spark, config, run_id="tiny-bronze", progress=lambda _m: None)
    failed = [r.error_message for r in records if r.status != "succeeded"]
    assert not failed, failed
    return {**manifest, "data_dir": str(out_dir)}


@pytest.fixture(scope="session")
def tiny_bronze(spark, services: Config, tmp_path_factory) -> dict:
    """Shared read-only state for tests that only read bronze (do not modify it)."""
    return prepare_tiny_bronze(spark, services, tmp_path_factory.mktemp("tiny-bronze"))
