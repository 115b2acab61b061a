"""BI-client conformance: the e2e stack's fresh Thrift server, through the Hive JDBC driver.

A small Java client (``BiClient.java``, compiled once per run against the jars pyspark ships:
hive-jdbc 2.3.10) does what JDBC/ODBC BI tools do: the navigator's metadata calls, the
query shapes they generate, many short sessions from several clients at once, and a client
killed in the middle of a large result. Expected values come from the dbt manifest and from
the same questions asked through the project's own client (PyHive), never from the Java side.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e_stack import Stack

from lakehouse.runtime.distribution import spark_home
from lakehouse.services import thrift as thrift_service

pytestmark = pytest.mark.e2e

CLIENT = Path(__file__).with_name("BiClient.java")
CLIENTS, CYCLES = 8, 25  # 200 sessions opened, used and closed
LARGE_ROWS = 100_000
MISSING_CLASS = ("NoClassDefFoundError", "ClassNotFoundException")


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    assert found, "java (a JDK 17) is needed"
    return found


@functools.cache
def _classes() -> Path:
    """BiClient compiled once per run (the source launcher would compile it in every JVM)."""
    out = Path(tempfile.mkdtemp(prefix="bi-client-"))
    atexit.register(shutil.rmtree, out, True)
    javac = Path(_java()).with_name("javac")
    compiled = subprocess.run(
        [str(javac), "-d", str(out), "-cp", str(spark_home() / "jars" / "*"), str(CLIENT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    return out


def _command(*args: str) -> list[str]:
    classpath = f"{_classes()}{os.pathsep}{spark_home() / 'jars' / '*'}"
    return [_java(), "-cp", classpath, CLIENT.stem, *args]


def _client(stack: Stack, command: str, *args: str, timeout: float = 300) -> list[list[str]]:
    """Run one BiClient command against the stack's endpoint; its fact lines, split on tabs."""
    result = subprocess.run(
        _command(command, _url(stack), *args), capture_output=True, text=True, timeout=timeout, check=False
    )
    facts = [line.split("\t") for line in result.stdout.splitlines() if line and not line.startswith(" ")]
    errors = [fact for fact in facts if fact[0] == "error"]
    assert result.returncode == 0 and not errors, (errors, result.stderr[-3000:])
    return facts


def _url(stack: Stack) -> str:
    return f"{stack.config.thrift.jdbc_url}/gold"


def _gold_models(stack: Stack) -> dict[str, dict]:
    """The gold models of the build the first run made, from dbt's manifest."""
    manifest = json.loads((stack.config.home / "dbt" / "target" / "manifest.json").read_text())
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "snapshot") and node["schema"] == "gold"
    }


def _words(text: str | None) -> str:
    return " ".join((text or "").split())


def test_the_navigator_sees_schemas_tables_typed_and_commented_columns(stack: Stack, first_run: str) -> None:
    facts = _client(stack, "metadata", "gold")
    schemas = {f[1] for f in facts if f[0] == "schema"}
    assert {"bronze", "silver", "gold", "ops"} <= schemas
    tables = {f[1]: f[2] for f in facts if f[0] == "table"}
    served = {row[1] for row in stack.query("show tables in gold")}
    assert set(tables) == served
    assert set(tables.values()) <= {"TABLE", "VIEW"}
    models = _gold_models(stack)
    assert set(models) <= set(tables)
    columns: dict[str, dict[str, tuple[str, str]]] = {}
    for _kind, table, name, type_name, remarks in (f for f in facts if f[0] == "column"):
        columns.setdefault(table, {})[name] = (type_name, remarks)
    for table in tables:
        described = [row for row in stack.query(f"describe gold.{table}") if row[0] and not row[0].startswith("#")]
        names = list(dict.fromkeys(row[0] for row in described))
        assert list(columns[table]) == names, table
        assert all(type_name for type_name, _remarks in columns[table].values()), table
    for table, node in models.items():
        for name, column in node["columns"].items():
            if column.get("description"):
                assert _words(columns[table][name][1]) == _words(column["description"]), (table, name)
    assert {f[1] for f in facts if f[0] == "primary_keys"} == set(tables)  # answered: empty, no error
    type_info = next(f[1] for f in facts if f[0] == "type_info").split(",")
    assert {"DATE", "TIMESTAMP", "STRING", "BIGINT", "DECIMAL"} <= set(type_info)
    assert int(next(f[1] for f in facts if f[0] == "functions")) > 100


def test_the_query_shapes_bi_tools_generate_answer_like_the_projects_client(stack: Stack, first_run: str) -> None:
    quality = stack.query(
        "select streaming_quality from gold.fct_viewing_sessions "
        "group by streaming_quality order by count(*) desc, streaming_quality limit 1"
    )[0][0]
    facts = {f[0]: f[1:] for f in _client(stack, "queries", quality)}

    assert facts["limit_0"][0] == "no rows"
    described = [row[0] for row in stack.query("describe gold.mart_daily_kpis") if row[0] and row[0][0] != "#"]
    assert [c.split(":")[0] for c in facts["limit_0"][1].split(",")] == list(dict.fromkeys(described))

    dates = "select cast(min(activity_date) as string), cast(max(activity_date) as string) from gold.mart_daily_kpis"
    assert facts["date_range"] == list(stack.query(dates)[0])
    times = "cast(min(started_at) as string), cast(max(started_at) as string), count(*)"
    first, last, count = stack.query(f"select {times} from gold.fct_viewing_sessions")[0]
    assert [value[:19] for value in facts["timestamp_range"][:2]] == [first[:19], last[:19]]
    assert int(facts["timestamp_range"][2]) == count
    users, titles = stack.query(
        "select count(distinct user_id), count(distinct content_id) from gold.fct_viewing_sessions"
    )[0]
    assert [int(v) for v in facts["count_distinct"]] == [users, titles]
    months = stack.query("select count(distinct date_trunc('MONTH', started_at)) from gold.fct_viewing_sessions")
    assert [int(v) for v in facts["by_month"]] == [months[0][0], count]
    in_quality = stack.query(f"select count(*) from gold.fct_viewing_sessions where streaming_quality = '{quality}'")
    assert facts["prepared"] == [quality, str(in_quality[0][0])]
    top = stack.query(
        "select content_id, sum(watch_seconds) as watch_seconds from gold.fct_viewing_sessions "
        "group by content_id order by watch_seconds desc, content_id limit 10"
    )
    assert facts["top_10"] == [",".join(f"{content}={seconds}" for content, seconds in top)]
    assert facts["large_result"] == [str(LARGE_ROWS), str(LARGE_ROWS * (LARGE_ROWS - 1) // 2)]


def test_two_hundred_sessions_from_eight_clients_leave_the_server_answering(stack: Stack, first_run: str) -> None:
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(lambda _n: _client(stack, "sessions", str(CYCLES), timeout=600), range(CLIENTS)))
    assert [r[-1] for r in results] == [["sessions", str(CYCLES)]] * CLIENTS
    assert stack.query("select 'still answering'") == [("still answering",)]
    log = thrift_service.log_file(stack.config).read_text(errors="replace")
    assert not [line for line in log.splitlines() if any(name in line for name in MISSING_CLASS)]


def test_a_client_killed_in_the_middle_of_a_large_result_leaves_the_server_answering(
    stack: Stack, first_run: str
) -> None:
    holder = subprocess.Popen(
        _command("hold", _url(stack), "select id from range(20000000)"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = holder.stdout.readline()
            if not line or line.strip() == "started":
                break
        time.sleep(3)  # the query runs and its first batches are on their way
        assert holder.poll() is None, "the client finished before it was killed"
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert stack.query("select count(*) from gold.dim_date")[0][0] > 0
    assert _client(stack, "sessions", "3")[-1] == ["sessions", "3"]
