"""The Thrift endpoint as BI tools use it, on the session's real Thrift server.

- Many short sessions from concurrent clients: no missing class in the server's log, no
  handler thread left busy or stuck, the server still answers (pip's pyspark lacks
  hive-llap-common, whose absence broke the first session close and hung every later one).
- min/max of date and timestamp columns and count(*) of a Delta table, with and without
  filters, over PyHive and the Hive JDBC driver (beeline) (Delta's metadata-only answer for
  dates failed with a ClassCastException).
- The SQL lockdown: every way to load code, call Java or read a file by path is refused with
  one clear line, while what dbt and BI tools do still works.
- ``hive+lakehouse://`` lists the real table and view names.
- Scheduling: BI sessions run in the pool ``bi``, dbt's and the pipeline's in ``etl``; a BI
  query finishes while ETL work holds every core (the FAIR scheduler; in FIFO it waited for the
  whole ETL job), and the server cancels a BI query past its limit.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import date, datetime
from pathlib import Path

import pytest
from pyhive.exc import Error as HiveError

from lakehouse.config import Config
from lakehouse.modeling.runner import DBT_PROJECT_DIR, EXIT_OK, dbt_environment, dbt_executable, run_transform
from lakehouse.runtime.distribution import beeline_path
from lakehouse.services import thrift as thrift_service
from lakehouse.serving import pools
from lakehouse.serving.sql_client import QueryError, connect, run_query, server_message
from lakehouse.spark import spark_env

pytestmark = pytest.mark.integration

SCHEMA = "serving_probe"
DATES_TABLE = f"{SCHEMA}.bi_dates"
CYCLES = 200
CLIENTS = 8
# 200 open/query/close cycles take about 30 s on the 2-core CI machine under load.
CHURN_BOUND_SECONDS = 240
HANDLER_THREAD = "HiveServer2-Handler-Pool"
# A handler thread parked here serves no connection (it waits for the next one).
IDLE_FRAME = "ThreadPoolExecutor.getTask"
STUCK_FRAMES = ("registerAllFunctionsOnce", "SessionState.close")
MISSING_CLASS = re.compile(r"NoClassDefFoundError|ClassNotFoundException")
CHURN_STATEMENTS = ("select 1", "show tables in default", "show databases")
REFUSED = "is refused on this endpoint"
# ETL work that holds both cores for tens of seconds in many short tasks: a BI query submitted
# meanwhile gets the next free core in FAIR mode, and in FIFO mode waits for every one of them.
HEAVY_TASKS = 48
HEAVY_QUERY = f"select sum(hash(id)) from range(0, {HEAVY_TASKS * 20_000_000}, 1, {HEAVY_TASKS})"
HEAVY_HEAD_START_SECONDS = 5
# The bound for a BI query (a count over a small Delta table) while the heavy query runs. It
# waits for one running task, then shares the cores. Measured on the 2-core CI machine: see
# the README ("A dashboard is not queued behind a dbt build"): 3 s idle, 3.5 s busy.
BI_BOUND_SECONDS = 30
BI_TIMEOUT_SECONDS = 3


def _server_pid(config: Config) -> int:
    pid = thrift_service.read_pid(thrift_service.pid_file(config))
    assert pid is not None, "the session's Thrift server is not running"
    return pid


def _handler_threads(pid: int) -> list[str]:
    """The stack of every HiveServer2 handler thread of the server (jstack)."""
    jstack = shutil.which("jstack")
    if jstack is None:
        pytest.skip("jstack (a JDK) is not available")
    dump = subprocess.run([jstack, str(pid)], capture_output=True, text=True, timeout=120, check=True).stdout
    return [block for block in dump.split("\n\n") if block.startswith(f'"{HANDLER_THREAD}')]


def _one_session(config: Config, index: int) -> None:
    """Open a session, run one statement (every second one asynchronously, as dbt does), close."""
    from TCLIService.ttypes import TOperationState

    running = (TOperationState.INITIALIZED_STATE, TOperationState.PENDING_STATE, TOperationState.RUNNING_STATE)
    connection = connect(config)
    try:
        cursor = connection.cursor()
        cursor.execute(CHURN_STATEMENTS[index % len(CHURN_STATEMENTS)], async_=index % 2 == 0)
        while cursor.poll().operationState in running:
            time.sleep(0.05)
        cursor.fetchall()
    finally:
        connection.close()


def test_the_llap_classes_are_on_the_thrift_server_classpath(services: Config) -> None:
    cmdline = Path(f"/proc/{_server_pid(services)}/cmdline").read_bytes().split(b"\0")
    classpath = cmdline[cmdline.index(b"-cp") + 1].decode()
    assert any(Path(p).name.startswith("hive-llap-common-") for p in classpath.split(":")), classpath


def test_many_sessions_from_concurrent_clients_leave_nothing_stuck(services: Config) -> None:
    pid = _server_pid(services)
    before = _handler_threads(pid)
    pool = ThreadPoolExecutor(max_workers=CLIENTS)
    started = time.monotonic()
    futures = [pool.submit(_one_session, services, i) for i in range(CYCLES)]
    done, not_done = wait(futures, timeout=CHURN_BOUND_SECONDS)
    elapsed = time.monotonic() - started
    pool.shutdown(wait=False, cancel_futures=True)
    assert not not_done, f"{len(not_done)} of {CYCLES} sessions did not finish within {CHURN_BOUND_SECONDS} s"
    errors = [repr(f.exception())[:300] for f in done if f.exception() is not None]
    assert not errors, errors[:3]

    assert run_query(services, "select 42 as answer").rows == [(42,)]
    after = _handler_threads(pid)
    busy = [t.splitlines()[0] for t in after if IDLE_FRAME not in t]
    stuck = [t.splitlines()[0] for t in after if any(frame in t for frame in STUCK_FRAMES)]
    assert not stuck, stuck
    assert not busy, busy  # every client closed: no handler thread still serves a session
    assert len(after) <= len(before) + 2 * CLIENTS, (len(before), len(after))
    log = thrift_service.log_file(services).read_text(errors="replace")
    assert not MISSING_CLASS.findall(log), [line for line in log.splitlines() if MISSING_CLASS.search(line)][:3]
    print(f"{CYCLES} sessions from {CLIENTS} clients in {elapsed:.1f} s")


@pytest.fixture(scope="module")
def dates_table(services: Config) -> str:
    """A small Delta table with dates, timestamps and a null row, written through the endpoint."""
    run_query(services, f"create database if not exists {SCHEMA}")
    run_query(services, f"drop table if exists {DATES_TABLE}")
    run_query(services, f"create table {DATES_TABLE} (id int, activity_date date, started_at timestamp) using delta")
    run_query(
        services,
        f"insert into {DATES_TABLE} values "
        "(1, date'2024-01-01', timestamp'2024-01-01 08:00:00'), "
        "(2, date'2024-02-29', timestamp'2024-02-29 12:30:00'), "
        "(3, date'2024-03-31', timestamp'2024-03-31 23:59:59'), "
        "(4, null, null)",
    )
    # A second commit, so that the answer spans more than one file's statistics.
    run_query(services, f"insert into {DATES_TABLE} values (5, date'2023-12-31', timestamp'2023-12-31 00:00:01')")
    return DATES_TABLE


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("max(activity_date), min(activity_date)", ("2024-03-31", "2023-12-31")),
        ("cast(max(activity_date) as date)", ("2024-03-31",)),
        ("max(started_at), min(started_at)", (datetime(2024, 3, 31, 23, 59, 59), datetime(2023, 12, 31, 0, 0, 1))),
        ("count(*)", (5,)),
        ("count(*), max(activity_date), min(started_at)", (5, "2024-03-31", datetime(2023, 12, 31, 0, 0, 1))),
    ],
)
@pytest.mark.parametrize("where", ["", "where id between 2 and 4"])
def test_min_max_and_count_of_dates_and_timestamps(
    services: Config, dates_table: str, select: str, expected: tuple, where: str
) -> None:
    if where:
        filtered = {
            "max(activity_date), min(activity_date)": ("2024-03-31", "2024-02-29"),
            "cast(max(activity_date) as date)": ("2024-03-31",),
            "max(started_at), min(started_at)": (datetime(2024, 3, 31, 23, 59, 59), datetime(2024, 2, 29, 12, 30)),
            "count(*)": (3,),
            "count(*), max(activity_date), min(started_at)": (3, "2024-03-31", datetime(2024, 2, 29, 12, 30)),
        }
        expected = filtered[select]
    assert run_query(services, f"select {select} from {dates_table} {where}").rows == [expected]


def test_the_hive_jdbc_driver_reads_the_date_range(services: Config, dates_table: str) -> None:
    query = f"select min(activity_date) as lo, max(activity_date) as hi, count(*) as n from {dates_table}"
    url = f"{services.thrift.jdbc_url}/default"
    result = subprocess.run(
        [str(beeline_path()), "-u", url, "-n", "tester", "--outputformat=csv2", "-e", query],
        capture_output=True,
        text=True,
        timeout=180,
        env=spark_env(services),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{date(2023, 12, 31)},{date(2024, 3, 31)},5" in result.stdout.splitlines()


def _forbidden(config: Config) -> dict[str, str]:
    """Statements a BI user must not run, by what each one is refused as."""
    secrets = config.spark_conf_dir / "hive-site.xml"
    return {
        "reading files by path": f"select * from text.`file://{secrets}`",
        "reading a Delta table by path": f"select * from delta.`{config.warehouse_dir}`",
        "reflect()": "select reflect('java.lang.System', 'getProperty', 'user.name')",
        "java_method()": "select java_method('java.lang.System', 'getProperty', 'user.name')",
        "try_reflect()": "select try_reflect('java.lang.System', 'getenv', 'HOME')",
        "reflect() in a CTE": "with c as (select reflect('java.lang.Math', 'abs', -1) as x) select * from c",
        "ADD JAR": "add jar /tmp/anything.jar",
        "ADD FILE": f"add file {secrets}",
        "CREATE FUNCTION": "create function evil as 'org.example.Evil' using jar '/tmp/evil.jar'",
        "CREATE TEMPORARY FUNCTION": "create temporary function evil as 'org.apache.hadoop.hive.ql.udf.UDFAscii'",
        "SELECT TRANSFORM": "select transform(1) using 'cat /etc/passwd' as (line)",
        "LOCATION": f"create table {SCHEMA}.located (a int) using delta location '/tmp/located'",
        "OPTIONS (path ...)": f"create table {SCHEMA}.by_path using text options (path '{secrets}')",
        "CREATE TEMPORARY VIEW ... USING": f"create temporary view leak using text options (path '{secrets}')",
        "USING jdbc": f"create table {SCHEMA}.out using jdbc options (url 'jdbc:postgresql://x/y', dbtable 't')",
        "LOAD DATA LOCAL": f"load data local inpath '{secrets}' into table {DATES_TABLE}",
        "INSERT OVERWRITE DIRECTORY": "insert overwrite local directory '/tmp/out' select 1",
        "CREATE DATABASE ... LOCATION": "create database elsewhere location '/tmp/elsewhere'",
        "SET spark.sql.runSQLOnFiles": "set spark.sql.runSQLOnFiles=true",
        "VACUUM by path": f"vacuum '{config.warehouse_dir}'",
        "a clone with a LOCATION": f"create table {SCHEMA}.cloned shallow clone {DATES_TABLE} location '/tmp/cl'",
    }


def test_the_lockdown_refuses_each_forbidden_statement_with_one_line(services: Config, dates_table: str) -> None:
    accepted = {}
    for what, statement in _forbidden(services).items():
        try:
            accepted[what] = run_query(services, statement).rows[:1]
        except QueryError as exc:
            message = str(exc)
            assert REFUSED in message and "\n" not in message, (what, message)
            assert "RefusedStatementException" in message, (what, message)
    assert not accepted, f"accepted: {accepted}"
    # Nothing of the metastore's connection leaked through a refusal, and the server still answers.
    assert run_query(services, f"select count(*) from {dates_table}").rows == [(5,)]


def test_what_dbt_and_bi_tools_run_still_works(
    services: Config, dates_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for statement in (
        f"create or replace table {SCHEMA}.ctas using delta as select id, activity_date from {dates_table}",
        f"create or replace view {SCHEMA}.recent as select * from {SCHEMA}.ctas where id > 2",
        f"alter table {SCHEMA}.ctas change column id comment 'the row id'",
        f"merge into {SCHEMA}.ctas t using (select 9 as id, date'2024-04-01' as activity_date) s "
        "on t.id = s.id when not matched then insert *",
        f"describe extended {SCHEMA}.ctas",
        f"show tables in {SCHEMA}",
        "set spark.sql.shuffle.partitions=2",
    ):
        run_query(services, statement)
    assert run_query(services, f"select count(*) from {SCHEMA}.recent").rows == [(4,)]  # ids 3, 4, 5 and 9
    # A real dbt build through the locked-down endpoint: the one model that needs no bronze data
    # (create table as select, column comments) and its own tests; "cautious" leaves out the
    # relationship tests of the models that need bronze.
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    assert run_transform(services, select="dim_date", check_gate=False) == EXIT_OK
    assert run_query(services, "select count(*) > 0 from gold.dim_date").rows == [(True,)]


def test_sqlalchemy_lists_the_real_table_and_view_names(services: Config, dates_table: str) -> None:
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.dialects import registry

    run_query(services, f"create or replace table {SCHEMA}.listed using delta as select 1 as a")
    run_query(services, f"create or replace view {SCHEMA}.listed_view as select * from {SCHEMA}.listed")
    installed = importlib.metadata.entry_points(group="sqlalchemy.dialects", name="hive.lakehouse")
    if not installed:
        # The entry point itself is checked in tests/unit/test_serving_config.py; here the dialect.
        registry.register("hive.lakehouse", "lakehouse.serving.sqlalchemy_dialect", "LakehouseHiveDialect")
    thrift = services.thrift
    engine = create_engine(f"hive+lakehouse://tester@{thrift.host}:{thrift.port}/{SCHEMA}")
    try:
        inspector = inspect(engine)
        tables = set(inspector.get_table_names(SCHEMA))
        views = inspector.get_view_names(SCHEMA)
        columns = [c["name"] for c in inspector.get_columns("bi_dates", SCHEMA)]
    finally:
        engine.dispose()
    assert {"bi_dates", "listed"} <= tables
    assert SCHEMA not in tables
    assert "listed_view" in views and "listed_view" not in tables
    assert columns == ["id", "activity_date", "started_at"]


# ------------------------------------------------------------------ scheduling: pools and limits


def _setting(connection, key: str) -> str:
    cursor = connection.cursor()
    cursor.execute(f"set {key}")
    return cursor.fetchall()[0][1]


def _seconds(duration: str) -> float:
    """A Spark duration as SET shows it (900s, 0ms, 0) in seconds."""
    number, unit = re.fullmatch(r"(\d+)\s*(ms|s|min|h)?", duration).groups()
    return int(number) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600, None: 1}[unit]


def test_bi_sessions_and_the_pipelines_sessions_get_their_pool_and_limit(services: Config) -> None:
    bi, etl = connect(services), connect(services, etl=True)
    try:
        assert _setting(bi, pools.POOL_KEY) == pools.BI_POOL
        assert _seconds(_setting(bi, pools.QUERY_TIMEOUT_KEY)) == services.thrift.bi_query_timeout_seconds > 0
        assert _setting(etl, pools.POOL_KEY) == pools.ETL_POOL
        assert _seconds(_setting(etl, pools.QUERY_TIMEOUT_KEY)) == 0
        assert _setting(bi, "spark.scheduler.mode") == "FAIR"
    finally:
        bi.close()
        etl.close()


def test_dbt_sessions_run_in_the_etl_pool_without_a_query_limit(services: Config) -> None:
    result = subprocess.run(
        [dbt_executable(), "--no-use-colors", "run-operation", "print_session_settings"],
        env=dbt_environment(services),
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    settings = dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("spark.sql."))
    assert settings[pools.POOL_KEY] == pools.ETL_POOL
    assert _seconds(settings[pools.QUERY_TIMEOUT_KEY]) == 0


def test_a_bi_query_is_not_queued_behind_etl_work(services: Config, dates_table: str) -> None:
    bi_query = f"select count(*) from {dates_table}"
    started = time.monotonic()
    assert run_query(services, bi_query).rows == [(5,)]
    idle_seconds = time.monotonic() - started
    with ThreadPoolExecutor(max_workers=1) as pool:
        heavy_started = time.monotonic()
        heavy = pool.submit(run_query, services, HEAVY_QUERY, etl=True)
        time.sleep(HEAVY_HEAD_START_SECONDS)  # its tasks hold both cores, the rest are queued
        assert not heavy.done(), heavy.exception() or "the ETL query is too short to hold the cores"
        started = time.monotonic()
        assert run_query(services, bi_query).rows == [(5,)]
        busy_seconds = time.monotonic() - started
        heavy_running = not heavy.done()
        heavy.result(timeout=900)
        heavy_seconds = time.monotonic() - heavy_started
    print(f"BI query: {idle_seconds:.1f} s idle, {busy_seconds:.1f} s during an ETL query of {heavy_seconds:.0f} s")
    assert heavy_running, f"the BI query waited for the whole ETL query ({busy_seconds:.0f} s)"
    # In FIFO the BI query waits until the last ETL task has started, so it ends just before
    # the ETL query does (measured: 27 s of the 28 s left); in FAIR it needs one task's time.
    etl_left_seconds = heavy_seconds - HEAVY_HEAD_START_SECONDS
    assert busy_seconds <= etl_left_seconds / 2, (
        f"the BI query took {busy_seconds:.0f} s of the ETL query's last {etl_left_seconds:.0f} s: queued behind it"
    )
    assert busy_seconds <= BI_BOUND_SECONDS


def test_the_server_cancels_a_bi_query_past_its_limit(services: Config) -> None:
    connection = connect(services)
    try:
        cursor = connection.cursor()
        # The server's limit for BI sessions (thrift.bi_query_timeout_seconds), lowered for this session.
        cursor.execute(f"set {pools.QUERY_TIMEOUT_KEY}={BI_TIMEOUT_SECONDS}s")
        started = time.monotonic()
        with pytest.raises(HiveError, match=r"(?i)timed? ?out|cancel") as failure:
            cursor.execute(HEAVY_QUERY)
            cursor.fetchall()
        seconds = time.monotonic() - started
    finally:
        connection.close()
    message = server_message(services, failure.value)
    print(f"cancelled after {seconds:.1f} s: {message}")
    assert "cancelled the query" in message and "thrift.bi_query_timeout_seconds" in message
    assert "\n" not in message
    assert seconds < BI_BOUND_SECONDS
    # The cancelled query's tasks were interrupted: the server answers at once.
    started = time.monotonic()
    assert run_query(services, "select 1").rows == [(1,)]
    assert time.monotonic() - started < BI_BOUND_SECONDS
