"""The platform on real servers: shared metastore, Delta, the Thrift server, service lifecycle."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from lakehouse_testing import free_port
from pymongo import MongoClient

from lakehouse import audit
from lakehouse.config import Config
from lakehouse.runtime.distribution import beeline_path
from lakehouse.serving.sql_client import QueryError, run_query
from lakehouse.spark import spark_env, spark_submit_command

pytestmark = pytest.mark.integration

PROBE_TABLE = "bronze.platform_probe"
PROBE_COLUMNS = ["probe_id", "title", "watch_hours"]


def _beeline(config: Config, *args: str) -> str:
    result = subprocess.run(
        [str(beeline_path()), "-u", f"{config.thrift.jdbc_url}/default", "-n", "tester", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=spark_env(config),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def probe_table(services: Config, project_root: Path) -> str:
    """Written by a separate spark-submit application while the Thrift server runs."""
    command = spark_submit_command(
        services, str(project_root / "tests" / "integration" / "probe_job.py"), [PROBE_TABLE, "7"], app_name="probe"
    )
    result = subprocess.run(command, env=spark_env(services), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return PROBE_TABLE


def test_table_from_another_application_is_described_over_thrift(probe_table: str, cli) -> None:
    result = cli("sql", f"describe {probe_table}", "--format", "csv")
    assert result.returncode == 0, result.stderr
    names = [line.split(",")[0] for line in result.stdout.splitlines()[1:]]
    assert names[:3] == PROBE_COLUMNS


def test_beeline_queries_the_table_and_jdbc_metadata_lists_its_columns(
    services: Config, probe_table: str, tmp_path: Path
) -> None:
    out = _beeline(
        services, "--outputformat=csv2", "-e", f"select count(*) as n, max(probe_id) as m from {probe_table}"
    )
    assert "7,6" in out.splitlines()
    # `!columns` calls JDBC DatabaseMetaData.getColumns, the call BI tools use to list columns.
    script = tmp_path / "columns.sql"
    script.write_text(f"!columns {probe_table.split('.')[1]}\n")
    listing = _beeline(services, "--outputformat=csv2", "-f", str(script))
    records = list(csv.DictReader(line for line in listing.splitlines() if "," in line))
    columns = [r["COLUMN_NAME"] for r in records if r.get("TABLE_NAME") == "platform_probe"]
    assert columns == PROBE_COLUMNS, listing[-2000:]


def test_sqlalchemy_inspector_sees_the_columns(services: Config, probe_table: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(f"hive://tester@{services.thrift.host}:{services.thrift.port}/bronze")
    try:
        columns = [c["name"] for c in inspect(engine).get_columns("platform_probe")]
    finally:
        engine.dispose()
    assert columns == PROBE_COLUMNS


def test_delta_merge_time_travel_and_history(spark) -> None:
    spark.sql("create database if not exists scratch")
    spark.sql("drop table if exists scratch.delta_basics")
    spark.createDataFrame([(1, "basic"), (2, "standard")], "user_id int, plan string").write.format(
        "delta"
    ).saveAsTable("scratch.delta_basics")
    spark.createDataFrame([(2, "premium"), (3, "basic")], "user_id int, plan string").createOrReplaceTempView("changes")
    spark.sql(
        """
        merge into scratch.delta_basics as t using changes as s on t.user_id = s.user_id
        when matched then update set plan = s.plan
        when not matched then insert *
        """
    )
    current = {r.user_id: r.plan for r in spark.table("scratch.delta_basics").collect()}
    assert current == {1: "basic", 2: "premium", 3: "basic"}
    original = {r.user_id: r.plan for r in spark.sql("select * from scratch.delta_basics version as of 0").collect()}
    assert original == {1: "basic", 2: "standard"}
    history = spark.sql("describe history scratch.delta_basics").orderBy("version").collect()
    assert [h.version for h in history] == [0, 1]
    assert history[1].operation == "MERGE"
    assert history[1].operationMetrics["numTargetRowsUpdated"] == "1"
    assert history[1].operationMetrics["numTargetRowsInserted"] == "1"


def test_sql_client_formats_and_errors(services: Config, cli) -> None:
    table = cli("sql", "select 1 as one, 'a' as letter")
    assert table.returncode == 0
    assert "| one | letter |" in table.stdout
    assert "(1 row)" in table.stdout
    as_json = cli("sql", "select 1 as one", "--format", "json")
    assert '"one": 1' in as_json.stdout
    bad = cli("sql", "select * from no_such_table")
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TABLE_OR_VIEW_NOT_FOUND" in lines[0]
    with pytest.raises(QueryError, match="no_such_table"):
        run_query(services, "select * from no_such_table")


def test_psycopg2_round_trip(services: Config) -> None:
    with psycopg2.connect(**services.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("create temporary table t (id int primary key, title text)")
        cur.execute("insert into t values (%s, %s)", (1, "Ünïcode title"))
        cur.execute("select id, title from t")
        assert cur.fetchall() == [(1, "Ünïcode title")]


def test_pymongo_round_trip(services: Config) -> None:
    with MongoClient(services.mongodb.connection_uri, serverSelectionTimeoutMS=5000) as mongo:
        collection = mongo[services.mongodb.database]["platform_probe"]
        collection.drop()
        document = {"_id": "c1", "title": "Series", "seasons": [{"season_number": 1, "episodes": [{"n": 1}]}]}
        collection.insert_one(document)
        assert collection.find_one({"_id": "c1"}) == document
        collection.drop()


def test_up_twice_is_a_no_op(services: Config, cli) -> None:
    from lakehouse.services import status

    before = {s.name: s.pid for s in status(services)}
    result = cli("up")
    assert result.returncode == 0, result.stderr
    assert "everything was already running" in result.stdout
    assert "starting" not in result.stdout, result.stdout  # no "thrift: starting ..." for a running server
    assert {s.name: s.pid for s in status(services)} == before


def test_one_writer_at_a_time_whatever_machine_or_state_directory_it_runs_from(services: Config, cli) -> None:
    """The advisory lock in PostgreSQL refuses every writing command while another holds it.

    The holder here is this test process, as another machine or container would be: it does not
    hold this state directory's file lock, only the lakehouse's shared one.
    """
    from lakehouse.pipeline.lock import holder_name, shared_lock

    with shared_lock(services, "backfill", wait=False, notify=print):
        for command in (
            ["transform"],
            ["extract"],
            ["validate"],
            ["quarantine", "users", "--where", "true", "--reason", "x"],
        ):
            result = cli(*command, timeout=120)
            assert result.returncode == 1, (command, result.stdout[-1000:], result.stderr[-1000:])
            line = result.stderr.strip().splitlines()[-1]
            assert line.startswith(f"lakehouse {command[0]}: error: another command writes this lakehouse: "), line
            assert holder_name("backfill") in line and "since " in line, line
        pipeline = cli("pipeline", "--from", "extract", timeout=120)
        assert pipeline.returncode == 1
        assert f"extract failed: another command writes this lakehouse: {holder_name('backfill')}" in pipeline.stdout
    # Released with its session: the next writer takes it at once.
    with shared_lock(services, "next", wait=False, notify=print):
        pass


def test_the_metastore_keeps_column_comments_as_long_as_dbt_writes_them(services: Config) -> None:
    """Hive's mapping allows 256 characters; dbt's descriptions are longer (a view stalled 20 s)."""
    comment = "A rule the row breaks: " + "negative_watch_seconds, " * 20
    run_query(services, "create database if not exists bronze")
    run_query(services, f"create or replace view bronze.platform_long_comment (a comment '{comment}') as select 1 as a")
    described = run_query(services, "describe bronze.platform_long_comment").rows
    assert described == [("a", "int", comment)]
    run_query(services, "drop view bronze.platform_long_comment")


def test_a_run_table_from_before_the_profile_gets_the_column_on_its_next_write(services: Config) -> None:
    """ops.pipeline_runs as main wrote it before the profile column: the pipeline's insert adds it."""
    table = "ops.platform_runs_before_profile"
    before = [f for f in audit.RUNS_SCHEMA.fields if f.name != audit.PROFILE_COLUMN]
    columns = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in before)
    run_query(services, "create database if not exists ops")
    run_query(services, f"drop table if exists {table}")
    run_query(services, f"create table {table} ({columns}) using delta")
    try:
        record = audit.StepRecord("platform", "pipeline", profile={"spark_applications": 0}).finish("succeeded")
        audit.record_over_thrift(services, [record], table)
        rows = run_query(services, f"select run_id, status, profile from {table}").rows
        assert rows == [("platform", "succeeded", '{"spark_applications": 0}')]
        described = [row[0] for row in run_query(services, f"describe {table}").rows]
        assert described[: len(before) + 1] == [f.name for f in before] + [audit.PROFILE_COLUMN]
    finally:
        run_query(services, f"drop table if exists {table}")


@pytest.fixture
def second_stack(tmp_path: Path, services: Config):
    """A separate state directory and ports for lifecycle tests (PostgreSQL and FerretDB)."""
    env = dict(os.environ)
    env.update(
        {
            "LAKEHOUSE_HOME": str(tmp_path / "home"),
            "LAKEHOUSE_CACHE_DIR": str(services.cache_dir),
            "LAKEHOUSE_POSTGRES_PORT": str(free_port()),
            "LAKEHOUSE_MONGODB_PORT": str(free_port()),
        }
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    yield env, run
    run("down", "mongodb", "postgres")


def test_up_down_up_keeps_data(second_stack) -> None:
    from lakehouse.config import load_config

    env, run = second_stack
    first = run("up", "postgres", "mongodb")
    assert first.returncode == 0, first.stderr
    assert "started: postgres, mongodb" in first.stdout
    config = load_config(env=env)
    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("create table kept (id int)")
        cur.execute("insert into kept values (42)")
    with MongoClient(config.mongodb.connection_uri, serverSelectionTimeoutMS=5000) as mongo:
        mongo.db.kept.insert_one({"_id": 42})

    assert "everything was already running" in run("up", "postgres", "mongodb").stdout
    down = run("down", "mongodb", "postgres")
    assert "stopped: mongodb, postgres" in down.stdout
    assert "stopped" in run("status").stdout
    assert run("up", "postgres", "mongodb").returncode == 0

    with psycopg2.connect(**config.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("select id from kept")
        assert cur.fetchall() == [(42,)]
    with MongoClient(config.mongodb.connection_uri, serverSelectionTimeoutMS=5000) as mongo:
        assert mongo.db.kept.find_one() == {"_id": 42}


def test_taken_port_gives_a_clear_error(second_stack) -> None:
    env, run = second_stack
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env["LAKEHOUSE_MONGODB_PORT"] = str(port)
        result = run("up", "mongodb")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0]
    assert "LAKEHOUSE_MONGODB_PORT" in lines[0]


def test_ops_tables_compact_themselves_and_are_vacuumed_every_so_many_commits(services: Config) -> None:
    """A run every five minutes appends to the ops tables each time: auto compaction folds the
    small files (a table from before gets the property), and a VACUUM follows every N commits."""
    import dataclasses

    from lakehouse.pipeline.maintain import maintain_ops
    from lakehouse.serving.sql_client import run_queries, session

    table = "ops.platform_run_log"
    run_query(services, "create database if not exists ops")
    run_query(services, f"drop table if exists {table}")
    run_query(services, f"create table {table} (run_id string) using delta")  # made before the property
    every = 5
    settings = dataclasses.replace(services.pipeline, ops_vacuum_commits=every)

    def maintain() -> list[str]:
        with session(services, etl=True) as sql:
            return maintain_ops(sql, [table], settings)

    assert maintain() == []  # too few commits for a VACUUM; the property is set
    assert dict(run_query(services, f"show tblproperties {table}").rows)[audit.AUTO_COMPACT] == "true"
    # One insert per run, as the pipeline's run log gets: 50 small files trigger a compaction.
    run_queries(services, [f"insert into {table} values ('run-{n}')" for n in range(55)], etl=True)
    history = run_query(services, f"describe history {table}")
    operations = [row[history.columns.index("operation")] for row in history.rows]
    assert "OPTIMIZE" in operations, operations  # auto compaction, a post-commit hook
    detail = run_query(services, f"describe detail {table}")
    files = detail.rows[0][detail.columns.index("numFiles")]
    assert files < 50, files
    assert maintain() == [table]
    assert maintain() == []  # vacuumed within its last commits
    run_query(services, f"drop table {table}")


def test_maintain_never_vacuums_a_table_whose_published_view_reads_an_older_version(services: Config) -> None:
    """A build table's small files are compacted by threshold; while its published view reads
    an older version it is not vacuumed (the view's files stay readable); once the view reads
    the newest version it is, and a table with few small files is left alone. The same for a
    table a view reads `VERSION AS OF` outside the build schemas: bronze under the silver
    staging views, which read it at the version the gate passed."""
    import dataclasses

    from lakehouse.pipeline.maintain import Plan, maintain_table, server_now, versions_read_by_views
    from lakehouse.serving.sql_client import session

    settings = dataclasses.replace(services.pipeline, vacuum_interval_hours=0, optimize_min_small_files=3)
    statements = [
        "drop database if exists mt_build cascade",
        "drop database if exists mt cascade",
        "drop database if exists mt_src cascade",
        "create database mt_build",
        "create database mt",
        "create database mt_src",
        "create table mt_build.kpis (id int) using delta",
        "insert into mt_build.kpis values (1)",
        "create view mt.kpis as select * from mt_build.kpis version as of 1",  # published: one row
        *(f"insert into mt_build.kpis values ({n})" for n in (2, 3)),
        "create table mt_build.few (id int) using delta",
        "insert into mt_build.few values (1)",
        "create view mt.few as select * from mt_build.few version as of 1",
        "create table mt_src.events (id int) using delta",
        "insert into mt_src.events values (1)",
        "create view mt.stg_events as select id * 10 as id from mt_src.events version as of 1",
        "insert into mt_src.events values (2)",
        "delete from mt_src.events where id = 1",  # the view's file is no longer live
    ]
    with session(services, etl=True) as sql:
        for statement in statements:
            sql(statement)
        now = server_now(sql)

        def operations(table: str) -> list[str]:
            history = sql(f"describe history {table}")
            return [row[history.columns.index("operation")] for row in history.rows]

        def maintain(table: str) -> Plan:
            return maintain_table(sql, table, now, settings, versions_read_by_views(sql, ["mt"]).get(table))

        pinned = maintain("mt_build.kpis")
        assert (pinned.optimize, pinned.vacuum, pinned.small_files) == (True, False, 3)
        assert "OPTIMIZE" in operations("mt_build.kpis") and "VACUUM END" not in operations("mt_build.kpis")
        assert sql("select count(*) from mt.kpis").rows == [(1,)]  # the view still reads its version
        few = maintain("mt_build.few")  # one small file, view on the newest
        assert (few.optimize, few.vacuum) == (False, True)
        assert "OPTIMIZE" not in operations("mt_build.few")
        source = maintain("mt_src.events")
        assert not source.vacuum and "VACUUM END" not in operations("mt_src.events")
        assert sql("select id from mt.stg_events").rows == [(10,)]

        newest = sql("describe history mt_build.kpis limit 1").rows[0][0]
        sql(f"create or replace view mt.kpis as select * from mt_build.kpis version as of {newest}")
        published = maintain("mt_build.kpis")
        assert (published.optimize, published.vacuum) == (False, True)  # nothing new since the OPTIMIZE
        assert "VACUUM END" in operations("mt_build.kpis")
        assert sql("select count(*) from mt.kpis").rows == [(3,)]
        newest = sql("describe history mt_src.events limit 1").rows[0][0]
        sql(f"create or replace view mt.stg_events as select id * 10 as id from mt_src.events version as of {newest}")
        assert maintain("mt_src.events").vacuum and "VACUUM END" in operations("mt_src.events")
        assert sql("select id from mt.stg_events").rows == [(20,)]
        sql("drop database mt cascade")
        sql("drop database mt_build cascade")
        sql("drop database mt_src cascade")


def test_maintain_lays_a_bronze_table_out_in_ranges_of_its_key(services: Config) -> None:
    """An OPTIMIZE of a bronze table that is due sorts it by its key into files of about the given
    size, each one range of keys: a later MERGE of recent keys rewrites one file, not all of them
    (before it, every file of the hashed inserts spans every key). The session's file size is
    reset afterwards."""
    import dataclasses

    from lakehouse.pipeline.maintain import MAX_FILE_SIZE_CONF, key_order, maintain_table, server_now
    from lakehouse.serving.sql_client import session

    assert key_order("bronze.viewing_sessions") == "session_id"
    assert key_order("BRONZE.ratings") == "user_id"
    assert key_order("bronze.quarantine") is None
    assert key_order("gold_build.fct_viewing_sessions") is None
    settings = dataclasses.replace(services.pipeline, vacuum_interval_hours=100_000, optimize_min_small_files=3)
    with session(services, etl=True) as sql:

        def spans() -> tuple[int, int]:
            """(sum of the files' key spans, the table's key span)."""
            files = sql("select min(id), max(id) from (select id, _metadata.file_path as f from mk.events) group by f")
            lows, highs = [low for low, _ in files.rows], [high for _, high in files.rows]
            return sum(highs) - sum(lows), max(highs) - min(lows)

        sql("drop database if exists mk cascade")
        sql("create database mk")
        sql("create table mk.events (id bigint, payload string) using delta")
        for part in range(4):  # four commits, a file each, every one across all the keys
            sql(f"insert into mk.events select id, sha2(cast(id as string), 256) from range({part}, 120000, 4)")
        hashed, span = spans()
        assert hashed > 3 * span

        decided = maintain_table(sql, "mk.events", server_now(sql), settings, order_by="id", file_bytes=1024 * 1024)
        assert decided.optimize
        history = sql("describe history mk.events limit 1")
        operation = dict(zip(history.columns, history.rows[0], strict=True))
        parameters = str(operation["operationParameters"])
        assert operation["operation"] == "OPTIMIZE" and "id" in parameters.split("zOrderBy", 1)[1][:12], parameters
        files = sql("select count(distinct _metadata.file_path) from mk.events").rows[0][0]
        ranged, span = spans()
        assert files >= 3 and ranged < 1.1 * span, (files, ranged, span)
        assert sql(f"set {MAX_FILE_SIZE_CONF}").rows[0][1] != str(1024 * 1024)
        sql("drop database mk cascade")
