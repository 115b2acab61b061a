"""The serving layer without a server: the Thrift command line, the TLS rule, the SQLAlchemy entry point."""

from __future__ import annotations

import importlib.metadata
import io
import os
import socket
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from lakehouse_testing import skip_unless_ci

from lakehouse import processes
from lakehouse.config import PROJECT_ROOT, ConfigError, load_config
from lakehouse.modeling import runner
from lakehouse.services import thrift as thrift_service
from lakehouse.services.process import ServiceError
from lakehouse.serving import auth, lockdown, pools
from lakehouse.serving.sqlalchemy_dialect import LakehouseHiveDialect
from lakehouse.spark import DELTA_EXTENSION

SECRET = "Zq-serving-secret-4k1"
ENTRY_POINT_GROUP = "sqlalchemy.dialects"
ENTRY_POINT_NAME = "hive.lakehouse"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_CACHE_DIR": str(tmp_path / "cache")}


def _built(config) -> None:
    """Stand-ins for the jars `lakehouse setup` builds, so only the rule under test can fail."""
    for jar in (auth.provider_jar(config), lockdown.extension_jar(config)):
        jar.parent.mkdir(parents=True, exist_ok=True)
        jar.touch()


def _conf(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_thrift_server_is_locked_down_and_has_the_llap_jar(env: dict[str, str]) -> None:
    config = load_config(env=env)
    command = thrift_service.command(config)
    conf = _conf(command)
    assert conf["spark.sql.runSQLOnFiles"] == "false"
    assert conf["spark.databricks.delta.optimizeMetadataQuery.enabled"] == "false"
    assert conf["spark.sql.extensions"].split(",") == [DELTA_EXTENSION, lockdown.EXTENSION_CLASS]
    classpath = command[command.index("--driver-class-path") + 1].split(":")
    assert str(lockdown.extension_jar(config)) in classpath
    assert any(Path(p).name == "hive-llap-common-2.3.10.jar" for p in classpath)
    assert command.index("--driver-class-path") < command.index("spark-internal")


def test_thrift_server_schedules_fair_with_a_bi_and_an_etl_pool(env: dict[str, str]) -> None:
    config = load_config(env={**env, "LAKEHOUSE_THRIFT_BI_QUERY_TIMEOUT_SECONDS": "120"})
    conf = _conf(thrift_service.command(config))
    assert conf["spark.scheduler.mode"] == "FAIR"
    allocation = ET.parse(conf["spark.scheduler.allocation.file"]).getroot()
    declared = {pool.get("name"): pool for pool in allocation.iter("pool")}
    assert set(declared) == {pools.BI_POOL, pools.ETL_POOL}
    # BI tasks go first: bi has a minimum share and the larger weight.
    assert int(declared["bi"].findtext("minShare")) > int(declared["etl"].findtext("minShare"))
    assert int(declared["bi"].findtext("weight")) > int(declared["etl"].findtext("weight"))
    # Every session is a BI session with the limit unless it asks for the etl pool.
    assert conf[pools.POOL_KEY] == pools.BI_POOL
    assert conf[pools.QUERY_TIMEOUT_KEY] == "120s"
    with pytest.raises(ConfigError, match=r"thrift\.bi_query_timeout_seconds"):
        load_config(env={**env, "LAKEHOUSE_THRIFT_BI_QUERY_TIMEOUT_SECONDS": "-1"})


def test_dbt_and_the_pipeline_open_etl_sessions(env: dict[str, str]) -> None:
    """HiveServer2 applies only set:hiveconf: session keys; dbt's profile sends the same ones."""
    configuration = pools.etl_session_configuration()
    assert configuration == {
        f"set:hiveconf:{pools.POOL_KEY}": pools.ETL_POOL,
        f"set:hiveconf:{pools.QUERY_TIMEOUT_KEY}": "0",
    }
    profile = yaml.safe_load((runner.DBT_PROJECT_DIR / "profiles.yml").read_text())
    parameters = profile["lakehouse"]["outputs"]["thrift"]["server_side_parameters"]
    assert set(parameters) == set(configuration)
    dbt_env = runner.dbt_environment(load_config(env=env), base={})
    assert dbt_env["DBT_SPARK_SCHEDULER_POOL"] == pools.ETL_POOL
    assert dbt_env["DBT_SPARK_QUERY_TIMEOUT"] == "0"
    for key, variable in (
        (pools.POOL_KEY, "DBT_SPARK_SCHEDULER_POOL"),
        (pools.QUERY_TIMEOUT_KEY, "DBT_SPARK_QUERY_TIMEOUT"),
    ):
        assert variable in parameters[f"set:hiveconf:{key}"]


def test_lockdown_can_be_turned_off_and_never_reaches_the_jobs(env: dict[str, str]) -> None:
    from lakehouse.spark import spark_properties

    off = load_config(env=env | {"LAKEHOUSE_THRIFT_LOCKDOWN": "false"})
    command = thrift_service.command(off)
    assert "spark.sql.extensions" not in _conf(command)
    assert str(lockdown.extension_jar(off)) not in " ".join(command)
    # The jobs' settings never name the extension, whatever thrift.lockdown says.
    on = load_config(env=env)
    assert lockdown.EXTENSION_CLASS not in " ".join(spark_properties(on).values())


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "thrift"])
def test_passwords_without_tls_off_loopback_refuse_to_start_in_one_line(env: dict[str, str], host: str) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_HOST": host, "LAKEHOUSE_THRIFT_PASSWORD": SECRET})
    _built(config)
    with pytest.raises(ServiceError) as refused:
        thrift_service.check_prerequisites(config)
    message = str(refused.value)
    assert "\n" not in message
    assert f"{host}:10000" in message
    assert "LAKEHOUSE_THRIFT_SSL=true" in message
    assert "LAKEHOUSE_THRIFT_ALLOW_PLAINTEXT_LOGIN=true" in message
    assert SECRET not in message


def test_the_plaintext_opt_out_loopback_and_tls_start(env: dict[str, str], tmp_path: Path) -> None:
    keystore = tmp_path / "server.p12"
    keystore.touch()
    allowed = {
        "opt-out": {"LAKEHOUSE_THRIFT_HOST": "0.0.0.0", "LAKEHOUSE_THRIFT_ALLOW_PLAINTEXT_LOGIN": "true"},
        "loopback": {"LAKEHOUSE_THRIFT_AUTH": "password"},
        "tls": {
            "LAKEHOUSE_THRIFT_HOST": "0.0.0.0",
            "LAKEHOUSE_THRIFT_SSL": "true",
            "LAKEHOUSE_THRIFT_SSL_KEYSTORE": str(keystore),
            "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": "x",
        },
        "no password": {"LAKEHOUSE_THRIFT_HOST": "0.0.0.0", "LAKEHOUSE_THRIFT_AUTH": "none"},
    }
    for case, extra in allowed.items():
        config = load_config(env=env | {"LAKEHOUSE_THRIFT_PASSWORD": SECRET} | extra)
        _built(config)
        thrift_service.check_prerequisites(config)  # no error: case
        assert config.thrift.lockdown, case


def test_a_missing_lockdown_jar_says_run_make_setup(env: dict[str, str]) -> None:
    with pytest.raises(ServiceError, match=r"thrift\.lockdown is on .* run `make setup`"):
        thrift_service.check_prerequisites(load_config(env=env))


def test_compose_publishes_plaintext_only_with_the_documented_opt_out() -> None:
    import yaml

    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    thrift = compose["services"]["thrift"]["environment"]
    assert thrift["LAKEHOUSE_THRIFT_HOST"] == "0.0.0.0"
    assert thrift["LAKEHOUSE_THRIFT_ALLOW_PLAINTEXT_LOGIN"].startswith("${THRIFT_ALLOW_PLAINTEXT_LOGIN")
    assert all(port.startswith("127.0.0.1:") for port in compose["services"]["thrift"]["ports"])


def test_pyproject_registers_the_sqlalchemy_dialect() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"][ENTRY_POINT_GROUP][ENTRY_POINT_NAME]
    entry = importlib.metadata.EntryPoint(ENTRY_POINT_NAME, target, ENTRY_POINT_GROUP)
    assert entry.load() is LakehouseHiveDialect
    assert LakehouseHiveDialect.name == "hive"  # tools choose behaviour by backend name


def test_the_installed_package_provides_the_sqlalchemy_url() -> None:
    entries = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=ENTRY_POINT_NAME)
    if not entries:
        skip_unless_ci("the installed lakehouse metadata predates the hive+lakehouse entry point: run `make setup`")
    from sqlalchemy.engine import make_url

    assert next(iter(entries)).load() is LakehouseHiveDialect
    assert make_url("hive+lakehouse://127.0.0.1:10000/gold").get_dialect() is LakehouseHiveDialect


@pytest.fixture
def silent_server():
    """A port that accepts TCP connections and never answers: what a hung Thrift server looks like."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_status_says_not_answering_when_the_port_is_open_but_queries_hang(
    env: dict[str, str], silent_server: int
) -> None:
    config = load_config(
        env=env | {"LAKEHOUSE_THRIFT_PORT": str(silent_server), "LAKEHOUSE_THRIFT_STATUS_TIMEOUT_SECONDS": "2"}
    )
    started = time.monotonic()
    assert not thrift_service.answers(config, timeout=2)
    assert time.monotonic() - started < 10
    pid_file = thrift_service.pid_file(config)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))  # a live process, as a running server's pid
    status = thrift_service.status(config)
    assert status.state == "not answering"
    assert status.log == thrift_service.log_file(config)


def test_a_hung_dbt_run_is_stopped_by_the_timeout_with_one_line(env: dict[str, str], silent_server: int) -> None:
    config = load_config(env=env | {"LAKEHOUSE_THRIFT_PORT": str(silent_server), "LAKEHOUSE_DBT_TIMEOUT_SECONDS": "3"})
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code = runner.run_transform(config, select="dim_date", output=out, errors=err, check_gate=False)
    assert code == runner.EXIT_FAILURE
    assert time.monotonic() - started < 3 + processes.STOP_GRACE_SECONDS + 10
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1, lines
    assert "within 3 s (dbt.timeout_seconds)" in lines[0]
    assert f"127.0.0.1:{silent_server}" in lines[0]
    assert str(thrift_service.log_file(config)) in lines[0]


def test_a_server_that_does_not_answer_fails_a_query_after_the_timeout_in_one_line(
    env: dict[str, str], silent_server: int
) -> None:
    from lakehouse.serving.sql_client import QueryError, run_query

    config = load_config(
        env=env | {"LAKEHOUSE_THRIFT_PORT": str(silent_server), "LAKEHOUSE_THRIFT_QUERY_TIMEOUT_SECONDS": "2"}
    )
    started = time.monotonic()
    with pytest.raises(QueryError) as failed:
        run_query(config, "select 1")
    assert time.monotonic() - started < 10
    message = str(failed.value)
    assert "\n" not in message
    assert f"127.0.0.1:{silent_server} did not answer within 2 s (thrift.query_timeout_seconds)" in message
    assert str(thrift_service.log_file(config)) in message
