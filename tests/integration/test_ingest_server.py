"""The pipeline's extract and validate on the ingest server (``pipeline.ingest_server``,
lakehouse/pipeline/ingest_server.py): a Spark application that stays up between runs.

Runs the pipeline's extract-and-validate part (``execute`` with ``--from extract`` until
validate) as the CLI does, in a subprocess where a test must kill it, on the tiny bronze."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg2
import pytest

from lakehouse.bronze.contracts import QUARANTINE_TABLE
from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.pipeline import ingest_server
from lakehouse.pipeline.context import Options
from lakehouse.pipeline.run import execute
from lakehouse.services import ingest as ingest_service
from lakehouse.services.process import read_pid

pytestmark = pytest.mark.integration

SETTING = "LAKEHOUSE_PIPELINE_INGEST_SERVER"
PART = Options(from_step="extract", until="validate")
# The same part in a process of its own (a test kills it as a user's Ctrl-C or a scheduler would).
CLIENT = (
    "import sys; from lakehouse.config import load_config; from lakehouse.pipeline.context import Options; "
    "from lakehouse.pipeline.run import execute; "
    "sys.exit(execute(load_config(), Options(from_step='extract', until='validate')).code)"
)


@pytest.fixture(scope="module")
def served(services: Config, tiny_bronze) -> Iterator[Config]:
    """The setting on (in this process and its children) for the module, whose tests share one
    server (each server is a JVM start); the server stopped at the end."""
    os.environ[SETTING] = "true"
    config = load_config()
    assert ingest_server.for_pipeline(config)
    try:
        yield config
    finally:
        del os.environ[SETTING]
        ingest_service.stop(config)


def _touch_users(config: Config, count: int, city: str = "Servedtown") -> None:
    """The first ``count`` users moved to ``city`` at the source: the next extract has a batch."""
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "update users set city = %s, updated_at = now() "
            "where user_id in (select user_id from users order by user_id limit %s)",
            (city, count),
        )


def _part(config: Config):
    out = io.StringIO()
    outcome = execute(config, PART, out)
    return outcome, out.getvalue()


@pytest.mark.timeout(900)  # a server start and two runs (about 1-2 min on a quiet machine)
def test_runs_after_the_first_find_the_server_warm_and_start_no_spark_application(served: Config, spark) -> None:
    _touch_users(served, 3)
    first, said = _part(served)
    assert first.code == 0, said[-4000:]
    assert "ingest server: starting it" in said
    assert "extract: the ingest server's Spark session" in said
    assert "the gate runs: the extract wrote 3 row(s) to bronze" in said, said[-3000:]
    extract = next(r for r in first.results if r.name == "extract")
    assert extract.profile["spark_applications"] == 1 and extract.profile["ingest_server"] is True
    pid = read_pid(ingest_service.pid_file(served))
    assert pid is not None

    _touch_users(served, 2)
    second, said = _part(served)
    assert second.code == 0, said[-4000:]
    assert "ingest server: starting it" not in said
    assert "the gate runs: the extract wrote 2 row(s) to bronze" in said, said[-3000:]
    validate = next(r for r in second.results if r.name == "validate")
    assert validate.status == "succeeded" and validate.rows_read and validate.rows_read >= 2
    extract = next(r for r in second.results if r.name == "extract")
    assert extract.profile["spark_applications"] == 0
    assert read_pid(ingest_service.pid_file(served)) == pid  # the same application, warm
    [(runs,)] = spark.sql(
        f"select count(*) from ops.pipeline_runs where run_id = '{second.run_id}' and step = 'pipeline' "
        "and get_json_object(profile, '$.spark_applications') = '0'"
    ).collect()
    assert runs == 1


@pytest.mark.timeout(900)
def test_a_killed_client_cancels_its_run_and_the_next_run_on_other_settings_carries_on(served: Config, spark) -> None:
    pid = read_pid(ingest_service.pid_file(served))
    assert pid is not None  # the first test's server, warm
    log = ingest_service.log_file(served)
    logged = log.read_text()

    _touch_users(served, 40, "Killtown")
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert client.stdout is not None
    seen: list[str] = []
    for line in client.stdout:  # killed as soon as the server has begun its run
        seen.append(line)
        if "extract: the ingest server's Spark session" in line:
            break
    else:
        pytest.fail("the run never began on the server:\n" + "".join(seen)[-3000:])
    os.killpg(client.pid, signal.SIGKILL)
    client.wait(timeout=30)
    deadline = time.monotonic() + 120
    while "was cancelled" not in log.read_text()[len(logged) :] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "the client went away" in log.read_text()[len(logged) :], log.read_text()[-3000:]
    assert read_pid(ingest_service.pid_file(served)) == pid  # the server stays up for the next run

    # The next run, with other settings: this server does not serve them, a new one does.
    os.environ["LAKEHOUSE_PIPELINE_JOB_TIMEOUT_SECONDS"] = "7000"
    try:
        again, said = _part(load_config())
    finally:
        del os.environ["LAKEHOUSE_PIPELINE_JOB_TIMEOUT_SECONDS"]
    assert again.code == 0, said[-4000:]
    assert "it runs with other settings or code; starting a new one" in said
    assert read_pid(ingest_service.pid_file(served)) not in (None, pid)
    users = spark.table("bronze.users")
    assert users.count() == users.select("user_id").distinct().count()
    # The source's newest rows, once each: every moved user that the extract does not quarantine.
    with psycopg2.connect(**served.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("select user_id from users where city = 'Killtown'")
        moved = {str(user_id) for (user_id,) in cur.fetchall()}
    assert len(moved) >= 30  # the first 40 rows by user_id (the tiny sources repeat a few ids)
    quarantined = {
        row.record_key
        for row in spark.table(QUARANTINE_TABLE).filter("source_table = 'users'").select("record_key").collect()
    }
    landed = {str(row.user_id) for row in users.filter("city = 'Killtown'").select("user_id").collect()}
    assert landed == moved - quarantined and len(landed) >= 30, (sorted(moved - landed), len(landed))
