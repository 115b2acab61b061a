"""The dashboards on a real Superset over the e2e stack's Thrift server and its gold.

`lakehouse dashboard up` as a user runs it (Superset's virtualenv from the cache, installed
there once from dashboards/requirements.lock), then: every chart's saved query context through
``POST /api/v1/chart/data``; the numbers of three charts against the same query over Thrift, and
of a Platform KPIs and a Content chart with a native filter's value added; the five dashboards
in headless Chromium (screenshots under the stack's state directory) with no chart error; a
second `up` that installs nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from e2e_stack import Stack
from lakehouse_testing import free_port, skip_unless_ci

from lakehouse.config import PROJECT_ROOT, Config, load_config
from lakehouse.dashboards import api, bundle, install, superset

pytestmark = pytest.mark.e2e

SCREENSHOT = PROJECT_ROOT / "tests" / "e2e" / "dashboard_screenshot.py"
# A first run builds dim_users with one version per user: no plan change yet.
EMPTY_ON_A_FIRST_RUN = {"Plan changes per month"}
UP_TIMEOUT_SECONDS = 1200  # a cold install is about a minute on two cores, more beside the other layers


class Dashboards:
    """The stack's Superset: its environment, config and API session."""

    def __init__(self, stack: Stack) -> None:
        self.env = {**stack.env, "LAKEHOUSE_DASHBOARD_PORT": str(free_port())}
        self.config: Config = load_config(env=self.env)
        self.stack = stack

    def run(self, *args: str, timeout: float = UP_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        return self.stack.run("dashboard", *args, timeout=timeout, env=self.env)


@pytest.fixture(scope="module")
def dashboards(stack: Stack, first_run: str) -> Iterator[Dashboards]:
    board = Dashboards(stack)
    started = time.monotonic()
    result = board.run("up")
    print(f"dashboard up: {time.monotonic() - started:.1f} s", file=sys.stderr)
    try:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield board
    finally:
        board.run("down", timeout=120)


@pytest.fixture(scope="module")
def charts(dashboards: Dashboards) -> dict[str, api.ChartResult]:
    return {result.name: result for result in api.check_charts(dashboards.config)}


def test_up_prints_the_url_and_where_the_password_is(dashboards: Dashboards) -> None:
    result = dashboards.run("status", timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{dashboards.config.dashboard.url}/dashboard/list/" in result.stdout
    assert str(superset.admin_password_file(dashboards.config)) in result.stdout
    password = superset.admin_password(dashboards.config)
    assert password not in result.stdout
    assert password not in (superset.superset_dir(dashboards.config) / "superset_config.py").read_text()


def test_every_chart_answers_through_the_chart_data_api(charts: dict[str, api.ChartResult]) -> None:
    expected = {data["slice_name"] for data in bundle.load().charts.values()}
    assert set(charts) == expected
    errors = {name: result.error for name, result in charts.items() if result.error}
    assert errors == {}
    empty = {name for name, result in charts.items() if result.rows == 0}
    assert empty == EMPTY_ON_A_FIRST_RUN


def test_the_table_picker_lists_the_gold_views_by_name(stack: Stack, dashboards: Dashboards) -> None:
    """Superset's Hive spec read the schema column of Spark's SHOW VIEWS: `gold`, once."""
    session = api.client(dashboards.config)
    [database] = session.call("GET", "/api/v1/database/")["result"]
    listed = session.call("GET", f"/api/v1/database/{database['id']}/tables/?q=(force:!t,schema_name:gold)")
    gold = {name for _schema, name, _temporary in stack.query("show tables in gold")}
    assert {table["value"] for table in listed["result"]} == gold


def _epoch_ms(day: date | str) -> float:
    """A DATE as the chart-data API gives a temporal x axis: milliseconds since the epoch, UTC."""
    day = date.fromisoformat(str(day))
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000


def test_chart_numbers_equal_the_same_query_over_thrift(stack: Stack, charts: dict[str, api.ChartResult]) -> None:
    [(sessions,)] = stack.query("select sum(sessions) from gold.mart_daily_kpis where grain = 'overall'")
    assert charts["Sessions (all days)"].data == [{"Sessions": sessions}]

    daily = stack.query("select activity_date, active_users from gold.mart_daily_kpis where grain = 'overall'")
    shown = {row["activity_date"]: row["Active users"] for row in charts["Daily active users"].data}
    assert shown == {_epoch_ms(day): float(users) for day, users in daily}

    by_country = stack.query(
        "select country_code, sum(sessions), sum(watch_hours) from gold.mart_daily_kpis "
        "where grain = 'country' group by country_code order by sum(sessions) desc limit 30"
    )
    table = {row["country_code"]: row for row in charts["Countries: sessions and watch hours"].data}
    assert {country: row["Sessions"] for country, row in table.items()} == {c: s for c, s, _ in by_country}
    for country, _, hours in by_country:
        assert math.isclose(table[country]["Watch hours"], hours, rel_tol=1e-9)


def test_the_per_day_rates_added_up_from_the_finest_grain_equal_the_overall_rows(
    stack: Stack, charts: dict[str, api.ChartResult]
) -> None:
    """The Platform KPIs charts a Device or Country filter reaches read grain device_country and add
    it up; with no filter they show the overall rows' numbers."""
    daily = stack.query(
        "select activity_date, completion_rate, avg_session_minutes from gold.mart_daily_kpis where grain = 'overall'"
    )
    completion = {row["activity_date"]: row["Completion rate"] for row in charts["Completion rate per day"].data}
    minutes = {
        row["activity_date"]: row["Average session minutes"] for row in charts["Average session length (minutes)"].data
    }
    assert set(completion) == set(minutes) == {_epoch_ms(day) for day, _, _ in daily}
    for day, rate, length in daily:
        assert math.isclose(completion[_epoch_ms(day)], rate, rel_tol=1e-9)
        assert math.isclose(minutes[_epoch_ms(day)], length, rel_tol=1e-9)


def _chart(session: api.Client, name: str) -> dict:
    return next(chart for chart in session.charts() if chart["slice_name"] == name)


def _filter_of(dashboard_title: str, filter_name: str) -> dict:
    [dashboard] = [d for d in bundle.load().dashboards.values() if d["dashboard_title"] == dashboard_title]
    configuration = dashboard["metadata"]["native_filter_configuration"]
    return next(native for native in configuration if native["name"] == filter_name)


def test_a_device_filter_gives_the_numbers_of_the_same_filtered_query_over_thrift(
    stack: Stack, dashboards: Dashboards
) -> None:
    column = _filter_of("Platform KPIs", "Device")["targets"][0]["column"]["name"]
    [(device, sessions)] = stack.query(
        f"select {column}, sum(sessions) from gold.mart_daily_kpis where grain = 'device' "
        f"group by {column} order by sum(sessions) limit 1"
    )
    session = api.client(dashboards.config)
    chart = _chart(session, "Sessions (all days)")
    filtered = session.chart_data(chart, [{"col": column, "op": "IN", "val": [device]}])
    [(over_thrift,)] = stack.query(
        f"select sum(sessions) from gold.mart_daily_kpis where grain = 'device_country' and {column} = '{device}'"
    )
    assert filtered.error is None
    assert filtered.data == [{"Sessions": over_thrift}]
    assert over_thrift == sessions  # the finest grain adds up to the device's own rows
    assert over_thrift < session.chart_data(chart).data[0]["Sessions"]


def test_a_content_type_filter_gives_the_titles_of_the_same_filtered_query_over_thrift(
    stack: Stack, dashboards: Dashboards
) -> None:
    column = _filter_of("Content", "Content type")["targets"][0]["column"]["name"]
    [(content_type, _)] = stack.query(
        f"select {column}, count(*) from gold.mart_content_performance group by {column} order by count(*) limit 1"
    )
    session = api.client(dashboards.config)
    filtered = session.chart_data(
        _chart(session, "Top titles by watch hours"), [{"col": column, "op": "IN", "val": [content_type]}]
    )
    over_thrift = stack.query(
        f"select watch_hours from gold.mart_content_performance where {column} = '{content_type}' "
        "order by watch_hours desc limit 20"
    )
    assert filtered.error is None
    assert {row["content_type"] for row in filtered.data} == {content_type}
    assert [row["watch_hours"] for row in filtered.data] == [hours for (hours,) in over_thrift]


@pytest.mark.timeout(600)
def test_the_dashboards_render_in_chromium_without_a_chart_error(dashboards: Dashboards) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        skip_unless_ci("Chromium is not installed (apt-get install chromium chromium-driver)")
    config = dashboards.config
    layouts = {d["slug"]: len(bundle.layout_charts(d["position"])) for d in bundle.load().dashboards.values()}
    out = config.home / "reports" / "dashboards"
    python = str(install.venv_bin(config, "python"))
    password_file = str(superset.admin_password_file(config))
    command = [python, str(SCREENSHOT), config.dashboard.url, config.dashboard.admin_user, password_file, str(out)]
    result = subprocess.run([*command, *layouts], capture_output=True, text=True, timeout=540, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    pages = json.loads(result.stdout.strip().splitlines()[-1])
    assert {slug: page["errors"] for slug, page in pages.items()} == {slug: [] for slug in layouts}
    assert {slug: page["charts"] for slug, page in pages.items()} == layouts
    for page in pages.values():
        assert Path(page["png"]).stat().st_size > 10_000


def test_a_second_up_installs_nothing(dashboards: Dashboards) -> None:
    started = time.monotonic()
    result = dashboards.run("up")
    assert result.returncode == 0, result.stderr
    assert "installing" not in result.stdout
    assert "was already running" in result.stdout
    assert time.monotonic() - started < 120
