"""Shared fixtures: one set of live services, one SparkSession and one tiny bronze for the run.

The suite has three layers, each in its own folder and with its own marker:

- ``tests/unit``: pure functions on a plain local SparkSession (``tests/unit/conftest.py``):
  no Hive, no metastore, no services, no network. ``make test-unit``.
- ``tests/integration`` (marker ``integration``): the live services started once per run
  (PostgreSQL, FerretDB, the metastore and one Thrift server), and one tiny bronze built once.
- ``tests/e2e`` (marker ``e2e``): ``lakehouse pipeline`` as a user runs it, in a stack of its own.

A test in a layer's folder without its marker is a collection error, so ``-m`` selections
mean what they say.

The live layers run in their own state directory (``<state>/test``) on their own ports, so a
`make pipeline` stack on the default ports keeps running untouched. The directory is wiped at
the start of a run, and every service the run starts is stopped at its end. Spark JVMs of the
run are tuned for tiny data (``TEST_JAVA_OPTIONS``, one Delta snapshot partition).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lakehouse_testing import TEST_JAVA_OPTIONS, alarm

from lakehouse.config import PROJECT_ROOT, Config, load_config

TESTS_DIR = Path(__file__).resolve().parent
# The marker every test of a layer's folder carries (unit tests carry none of them).
LAYER_MARKERS = {"integration": "integration", "e2e": "e2e"}

# Two test runs on one machine need LAKEHOUSE_TEST_PORT_OFFSET and LAKEHOUSE_TEST_HOME.
_OFFSET = int(os.environ.get("LAKEHOUSE_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {
    "LAKEHOUSE_POSTGRES_PORT": str(25432 + _OFFSET),
    "LAKEHOUSE_MONGODB_PORT": str(27027 + _OFFSET),
    "LAKEHOUSE_THRIFT_PORT": str(10010 + _OFFSET),
}
TINY_SEED = 42
TINY_RUN_ID = "tiny-bronze"
# The schemas the tiny bronze state consists of (silver and gold belong to dbt's modules).
TINY_SCHEMAS = ("bronze", "ops")

# Nothing waits forever. A test's body has pytest-timeout's limit: `timeout` in pyproject.toml
# (300 s) for the live layers, UNIT_TIMEOUT_SECONDS for unit tests, or its own
# `@pytest.mark.timeout(N)`. A fixture's setup (a stack start, the e2e stack's first pipeline)
# has FIXTURE_TIMEOUT_SECONDS, or the limit stated for it below. Either way the stacks of all
# threads are dumped and the test fails, naming what it waited for; teardowns still run.
UNIT_TIMEOUT_SECONDS = 60
FIXTURE_TIMEOUT_SECONDS = 600
FIXTURE_TIMEOUTS = {
    "tiny_state": 900,  # the tiny sources loaded and one `lakehouse extract`
    "cluster_extract": 900,  # tests/integration/test_cluster.py: the extract on a standalone cluster
    "s3_stack": 900,  # tests/integration/test_object_store.py: the tiny pipeline on SeaweedFS, from nothing
    "first_run": 1800,  # e2e: the first `lakehouse pipeline` of an empty stack, beside the integration layer
    "simulated": 1800,  # e2e: a simulated day, corrections and the next day's pipeline
    "dashboards": 900,  # e2e: `lakehouse dashboard up`, with Superset's install (~1 min) when the cache has none
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of tests/integration and tests/e2e carries its layer's marker, unit tests none."""
    for item in items:
        try:
            layer = item.path.resolve().relative_to(TESTS_DIR).parts[0]
        except ValueError:
            continue
        names = {mark.name for mark in item.iter_markers()}
        wanted = LAYER_MARKERS.get(layer)
        if wanted and wanted not in names:
            raise pytest.UsageError(f"{item.nodeid}: tests in tests/{layer} need `pytestmark = pytest.mark.{wanted}`")
        if layer == "unit" and names & set(LAYER_MARKERS.values()):
            raise pytest.UsageError(f"{item.nodeid}: a unit test needs no live service; move it to tests/integration")
        if layer == "unit" and "timeout" not in names:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_SECONDS))


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    """Bound each fixture's setup by its limit in FIXTURE_TIMEOUTS (its dependencies are set up
    before, each under its own limit)."""
    name = fixturedef.argname
    with alarm(f"fixture {name!r}", FIXTURE_TIMEOUTS.get(name, FIXTURE_TIMEOUT_SECONDS), "tests/conftest.py"):
        return (yield)


def _test_environment() -> dict[str, str]:
    """Environment overrides that point every component at the test state directory."""
    base = load_config()
    env = {
        "LAKEHOUSE_HOME": os.environ.get("LAKEHOUSE_TEST_HOME", str(base.home / "test")),
        # Jars and the FerretDB build are shared with the normal state directory.
        "LAKEHOUSE_CACHE_DIR": str(base.cache_dir),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_SPARK_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_SPARK_DELTA_SNAPSHOT_PARTITIONS": "1",
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_SPARK_JAVA_OPTIONS": TEST_JAVA_OPTIONS,
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


# ------------------------------------------------------------------ the tiny bronze, built once


def _silent(_message: str) -> None:
    pass


def delta_ids(spark, tables) -> dict[str, str]:
    """Each table's Delta id: a table dropped and created again under its name gets another."""
    return {name: spark.sql(f"describe detail {name}").first()["id"] for name in tables}


def delta_versions(spark, schemas: tuple[str, ...] = TINY_SCHEMAS) -> dict[str, int]:
    """The newest Delta version of every table of the schemas, by qualified name."""
    versions = {}
    for schema in schemas:
        if not spark.catalog.databaseExists(schema):
            continue
        for table in spark.catalog.listTables(schema):
            if not table.isTemporary:
                name = f"{schema}.{table.name}"
                versions[name] = spark.sql(f"describe history {name} limit 1").first()["version"]
    return versions


@dataclass
class TinyState:
    """Tiny sources (seed 42) loaded and bronze extracted from them by `lakehouse extract`.

    Built once per run. A module that changes sources or bronze calls :meth:`restore` (the
    ``tiny_bronze`` fixture does, before each module that uses it): the source files are loaded
    again, every bronze and ops table is put back with ``RESTORE TABLE ... TO VERSION AS OF``
    and tables created since are dropped. Only when a table of the state is gone or was made
    again (a module dropped a schema) is the state built again from nothing.
    """

    data_dir: Path
    manifest: dict = field(default_factory=dict)
    run_id: str = TINY_RUN_ID
    versions: dict[str, int] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    builds: int = 0
    restores: int = 0
    handed_out: bool = False  # a module has had it since it was built or restored

    def build(self, spark, config: Config) -> None:
        from lakehouse.sources.load import load_sources

        self.manifest = {**json.loads((self.data_dir / "manifest.json").read_text()), "data_dir": str(self.data_dir)}
        load_sources(config, self.data_dir, replace=True, progress=_silent)
        for schema in TINY_SCHEMAS:
            spark.sql(f"drop database if exists {schema} cascade")
        # As a user runs it: spark-submit of jobs/extract.py, both sources in one application.
        result = run_cli("extract", "--run-id", self.run_id, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        self.versions = delta_versions(spark)
        self.ids = delta_ids(spark, self.versions)
        self.builds += 1

    def restore(self, spark, config: Config) -> None:
        from lakehouse.sources.load import load_sources

        current = delta_versions(spark)
        # A table gone, or dropped and made again (another module rebuilt bronze from other
        # sources): its old versions are not the state's, so the state is built anew.
        if not set(self.versions) <= set(current) or delta_ids(spark, self.versions) != self.ids:
            self.build(spark, config)
            return
        load_sources(config, self.data_dir, replace=True, progress=_silent)
        for name in sorted(set(current) - set(self.versions)):
            spark.sql(f"drop table {name}")
        for name, version in sorted(self.versions.items()):
            if current[name] != version:
                spark.sql(f"restore table {name} to version as of {version}")
        self.restores += 1


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scale's generated files (seed 42), made once per run; read-only."""
    from lakehouse.sources.generate import generate

    out = tmp_path_factory.mktemp("tiny-sources") / "tiny"
    generate(out, scale="tiny", seed=TINY_SEED)
    return out


@pytest.fixture(scope="session")
def tiny_state(spark, services: Config, tiny_files: Path) -> TinyState:
    """The run's one tiny bronze (see TinyState), built on first use."""
    state = TinyState(tiny_files)
    state.build(spark, services)
    return state


@pytest.fixture(scope="module")
def tiny_bronze(spark, services: Config, tiny_state: TinyState) -> TinyState:
    """The tiny bronze as it was built, restored for this module: a module may change it freely."""
    if tiny_state.handed_out:
        tiny_state.restore(spark, services)
    tiny_state.handed_out = True
    return tiny_state
