"""The dashboards as code (dashboards/): sound without a server, rendered for import, normalised on export;
Superset's settings keep secrets out."""

from __future__ import annotations

import copy
import json
import os
import re
import socket
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from lakehouse.config import PROJECT_ROOT, ConfigError, load_config
from lakehouse.dashboards import bundle, install, superset
from lakehouse.dashboards.export import stable_name
from lakehouse.services.process import ServiceError

DASHBOARD_TITLES = {"Platform KPIs", "Content", "Subscriptions", "Viewing patterns", "Data health"}
# The "Plan changes per month" dataset repeats this dbt analysis over gold (plus two columns).
PLAN_CHANGES_ANALYSIS = PROJECT_ROOT / "dbt" / "analyses" / "plan_changes.sql"
PLAN_CHANGES_KEY = ["month_start_date", "previous_plan", "new_plan"]


@pytest.fixture(scope="module")
def committed() -> bundle.Bundle:
    return bundle.load()


def _one(files: dict, prefix: str) -> str:
    return next(path for path in files if path.startswith(prefix))


def test_the_committed_dashboards_are_sound(committed: bundle.Bundle) -> None:
    assert bundle.check(committed) == []
    assert {d["dashboard_title"] for d in committed.dashboards.values()} == DASHBOARD_TITLES
    assert len(committed.charts) >= len(DASHBOARD_TITLES) * 3


def test_the_datasets_read_gold_and_ops_only(committed: bundle.Bundle) -> None:
    schemas = {d["table_name"]: d["schema"] for d in committed.datasets.values()}
    assert set(schemas.values()) <= set(bundle.ALLOWED_SCHEMAS)
    marts = {name for name, schema in schemas.items() if schema == "gold" and name.startswith("mart_")}
    assert {"mart_daily_kpis", "mart_content_performance", "mart_subscriptions", "mart_viewing_patterns"} <= marts
    quarantine = next(d for d in committed.datasets.values() if "bronze.quarantine" in (d.get("sql") or ""))
    assert "payload" not in {c["column_name"] for c in quarantine["columns"]}
    assert "*" not in quarantine["sql"]


def test_check_names_a_column_the_dataset_does_not_have(committed: bundle.Bundle) -> None:
    files = copy.deepcopy(committed.files)
    path = _one(files, "charts/Daily_active_users")
    files[path]["params"]["metrics"][0]["column"]["column_name"] = "daily_users"
    assert bundle.check(bundle.Bundle(files)) == [f"{path}: mart_daily_kpis has no column 'daily_users'"]


def test_check_refuses_a_dataset_on_silver(committed: bundle.Bundle) -> None:
    files = copy.deepcopy(committed.files)
    path = _one(files, "datasets/lakehouse/plan_changes")
    files[path]["sql"] = files[path]["sql"].replace("gold.dim_users", "silver.stg_postgres__users")
    [problem] = bundle.check(bundle.Bundle(files))
    assert problem.startswith(f"{path}: its SQL reads silver.stg_postgres__users")


def test_check_finds_a_chart_on_no_dashboard_and_a_layout_without_its_chart(committed: bundle.Bundle) -> None:
    files = copy.deepcopy(committed.files)
    chart = _one(files, "charts/Daily_active_users")
    files[chart.replace("Daily", "Weekly")] = {**files[chart], "uuid": "00000000-0000-0000-0000-000000000001"}
    del files[_one(files, "charts/Latest_day_in_gold")]
    problems = bundle.check(bundle.Bundle(files))
    assert "charts/Weekly_active_users.yaml: is on no dashboard" in problems
    assert any("Platform_KPIs.yaml: its layout has chart" in p for p in problems)


def test_check_finds_a_repeated_uuid_and_a_chart_without_query_context(committed: bundle.Bundle) -> None:
    files = copy.deepcopy(committed.files)
    first, second = sorted(path for path in files if path.startswith("charts/"))[:2]
    files[second]["uuid"] = files[first]["uuid"]
    files[first]["query_context"] = None
    problems = bundle.check(bundle.Bundle(files))
    assert f"{second}: uuid {files[first]['uuid']} is also {first}'s" in problems
    assert any(p.startswith(f"{first}: query_context is missing") for p in problems)


def _native_filter(files: dict, dashboard: str, name: str) -> dict:
    configuration = files[_one(files, f"dashboards/{dashboard}")]["metadata"]["native_filter_configuration"]
    return next(native for native in configuration if native["name"] == name)


def test_the_day_one_filters_are_there(committed: bundle.Bundle) -> None:
    filters = {
        d["dashboard_title"]: {f["name"] for f in d["metadata"]["native_filter_configuration"]}
        for d in committed.dashboards.values()
    }
    assert filters["Platform KPIs"] == {"Days", "Device", "Country"}
    assert filters["Content"] == {"Content type", "Primary genre", "Viewer country"}


def test_check_names_the_dashboard_filter_and_column_of_a_native_filter_on_a_missing_column(
    committed: bundle.Bundle,
) -> None:
    files = copy.deepcopy(committed.files)
    _native_filter(files, "Platform_KPIs", "Device")["targets"][0]["column"]["name"] = "device"
    path = _one(files, "dashboards/Platform_KPIs")
    assert bundle.check(bundle.Bundle(files)) == [
        f"{path}: filter 'Device' targets column 'device' that mart_daily_kpis does not have"
    ]


def test_check_finds_a_native_filter_on_a_dataset_outside_the_bundle(committed: bundle.Bundle) -> None:
    files = copy.deepcopy(committed.files)
    _native_filter(files, "Content", "Content type")["targets"][0]["datasetUuid"] = (
        "00000000-0000-0000-0000-000000000002"
    )
    [problem] = bundle.check(bundle.Bundle(files))
    assert problem.startswith(f"{_one(files, 'dashboards/Content')}: filter 'Content type' targets dataset 00000000-")


def test_check_finds_a_native_filter_that_reaches_a_chart_without_its_column(committed: bundle.Bundle) -> None:
    """Superset drops a native filter on a chart whose dataset lacks the column: the chart would
    look filtered and not be."""
    files = copy.deepcopy(committed.files)
    genre = _native_filter(files, "Content", "Primary genre")
    heatmap = next(c for c in files.values() if c.get("slice_name") == "Genre popularity by age band (watch hours)")
    layout = bundle.layout_charts(files[_one(files, "dashboards/Content")]["position"])
    [chart_id] = [meta["chartId"] for meta in layout if meta["uuid"] == heatmap["uuid"]]
    genre["scope"]["excluded"].remove(chart_id)
    genre["chartsInScope"] = sorted([*genre["chartsInScope"], chart_id])
    assert bundle.check(bundle.Bundle(files)) == [
        f"{_one(files, 'dashboards/Content')}: filter 'Primary genre' reaches chart "
        "'Genre popularity by age band (watch hours)', whose dataset has no column 'primary_genre'"
    ]
    genre["chartsInScope"].remove(chart_id)
    assert bundle.check(bundle.Bundle(files))[0].endswith(
        "filter 'Primary genre' has chartsInScope that are not its layout's charts minus scope.excluded"
    )


def test_the_device_and_country_filters_reach_only_charts_on_the_finest_grain(committed: bundle.Bundle) -> None:
    """mart_daily_kpis holds four grains; a device filter on an 'overall' row would empty the chart.
    The charts in the filters' scope add up grain device_country; the ones outside keep theirs."""
    [kpis] = [d for d in committed.dashboards.values() if d["dashboard_title"] == "Platform KPIs"]
    by_uuid = {c["uuid"]: c for c in committed.charts.values()}
    layout = {meta["chartId"]: by_uuid[meta["uuid"]] for meta in bundle.layout_charts(kpis["position"])}

    def grains(chart_ids: list[int]) -> set[str]:
        filters = [f for i in chart_ids for f in layout[i]["params"]["adhoc_filters"] if f["subject"] == "grain"]
        return {f["comparator"] for f in filters}

    for native in kpis["metadata"]["native_filter_configuration"]:
        if native["name"] in ("Device", "Country"):
            assert grains(native["chartsInScope"]) == {"device_country"}
            assert len(native["chartsInScope"]) == len(layout) - 2
            assert "device_country" not in grains(native["scope"]["excluded"])
            assert native["adhoc_filters"][0]["comparator"] == "device_country"  # 'all' is not offered


def test_render_sets_the_uri_and_gives_each_importer_what_it_needs(committed: bundle.Bundle) -> None:
    uri = "hive+lakehouse://127.0.0.1:12345/gold"
    steps = bundle.render(committed, uri)
    assert list(steps) == list(bundle.KINDS)
    for kind, contents in steps.items():
        assert yaml.safe_load(contents["metadata.yaml"])["type"] == bundle.IMPORT_TYPES[kind]
        kinds = {path.split("/")[0] for path in contents if path != "metadata.yaml"}
        assert kinds == set(bundle.KINDS[: bundle.KINDS.index(kind) + 1])
    [database] = [yaml.safe_load(t) for p, t in steps["databases"].items() if p.startswith("databases/")]
    assert database["sqlalchemy_uri"] == uri
    chart = yaml.safe_load(steps["charts"][_one(steps["charts"], "charts/")])
    assert json.loads(chart["query_context"])["queries"]  # Superset's importer takes a JSON string


def test_an_export_of_an_import_gives_the_folder_back(committed: bundle.Bundle) -> None:
    """What Superset exports (its root folder, ids in names, JSON query contexts with this
    server's dataset ids) normalises to the committed files."""
    rendered = bundle.render(committed, "hive+lakehouse://127.0.0.1:12345/gold")["dashboards"]
    exported = {}
    for path, text in rendered.items():
        data = yaml.safe_load(text)
        if path.startswith("charts/"):
            context = json.loads(data["query_context"])
            context["datasource"] = {"id": 7, "type": "table"}
            context["form_data"]["datasource"] = "7__table"
            data["query_context"] = json.dumps(context)
            data["params"]["datasource"] = "7__table"
        name = Path(path)
        if path.split("/")[0] in ("charts", "dashboards", "datasets"):
            name = name.with_stem(name.stem + "_7")
        exported[f"dashboard_export_20261207T000000/{name.as_posix()}"] = bundle.dump(data)
    normalised = {stable_name(p): t for p, t in bundle.normalise_export(exported).items()}
    assert normalised == {path: bundle.dump(data) for path, data in committed.files.items()}


def test_the_uri_never_holds_the_thrift_password(tmp_path: Path) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path / "home")}
    assert superset.sqlalchemy_uri(load_config(env=env)) == "hive+lakehouse://127.0.0.1:10000/gold"
    env |= {"LAKEHOUSE_THRIFT_AUTH": "password", "LAKEHOUSE_THRIFT_PASSWORD": "s3cret/pw"}
    config = load_config(env=env)
    assert superset.sqlalchemy_uri(config) == "hive+lakehouse://lakehouse@127.0.0.1:10000/gold?auth=CUSTOM"
    text = superset.settings(config)
    assert "s3cret" not in text and "SQLALCHEMY_CUSTOM_PASSWORD_STORE = _thrift_password" in text
    assert "SECRET_KEY = (_SECRETS / 'superset.secret_key')" in text
    compile(text, "superset_config.py", "exec")  # valid Python


def test_without_auth_the_settings_have_no_password_store(tmp_path: Path) -> None:
    text = superset.settings(load_config(env={"LAKEHOUSE_HOME": str(tmp_path)}))
    assert "SQLALCHEMY_CUSTOM_PASSWORD_STORE" not in text
    assert "scarf" not in text.split("TALISMAN_CONFIG")[1]  # the CSP allows nothing from outside


def test_dashboard_settings_from_yaml_and_environment(tmp_path: Path) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path)}
    assert load_config(env=env).dashboard.url == "http://127.0.0.1:8088"
    assert load_config(env=env | {"LAKEHOUSE_DASHBOARD_PORT": "18088"}).dashboard.port == 18088
    # Listening on every interface (the compose container): clients on the machine ask loopback.
    everywhere = load_config(env=env | {"LAKEHOUSE_DASHBOARD_HOST": "0.0.0.0"})
    assert everywhere.dashboard.url == "http://127.0.0.1:8088" and "--bind=0.0.0.0:8088" in superset.command(everywhere)
    with pytest.raises(ConfigError, match=r"dashboard\.port"):
        load_config(env=env | {"LAKEHOUSE_DASHBOARD_PORT": "0"})


def test_the_virtualenv_is_in_the_users_cache_unless_set(tmp_path: Path) -> None:
    """Outside the clone and its state directory: a clean clone finds it installed."""
    env = {
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "LAKEHOUSE_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
    }
    venv = install.venv_dir(load_config(env=env))
    assert venv.parent == tmp_path / "xdg" / "lakehouse" / "superset" and install.lock_digest()[:16] in venv.name
    chosen = load_config(env=env | {"LAKEHOUSE_DASHBOARD_VENV_ROOT": str(tmp_path / "venvs")})
    assert install.venv_dir(chosen).parent == tmp_path / "venvs"


def test_an_installed_virtualenv_is_not_installed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_DASHBOARD_VENV_ROOT": str(tmp_path)})
    venv = install.venv_dir(config)
    assert venv.parent == tmp_path and install.lock_digest()[:16] in venv.name
    venv.mkdir(parents=True)
    (venv / install.STAMP).write_text(install.lock_digest())

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran although the virtualenv is installed")

    monkeypatch.setattr(install.processes, "run", no_subprocess)
    said: list[str] = []
    assert install.ensure_installed(config, said.append) == venv
    assert said == []


class _Exec(Exception):
    """os.execve, stopped before it replaces the test process."""


def test_serve_runs_in_the_foreground_what_start_runs_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's dashboard role (serve) and `dashboard up` (start) share one path: the port
    check, the set-up, then the same command line and environment; serve becomes the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_DASHBOARD_PORT": str(port)})
    calls: list[object] = []
    monkeypatch.setattr(superset, "prepare", lambda config, say: calls.append("prepare"))

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))
        raise _Exec

    monkeypatch.setattr(superset.os, "execve", execve)
    with pytest.raises(_Exec):
        superset.serve(config, lambda line: None)
    assert calls[0] == "prepare"
    path, argv, env = calls[1]
    assert path == argv[0] == str(install.venv_bin(config, "gunicorn")) and argv == superset.command(config)
    assert f"--bind=127.0.0.1:{port}" in argv
    assert env["SUPERSET_CONFIG_PATH"] == str(tmp_path / "superset" / "superset_config.py")

    started: dict[str, object] = {}
    monkeypatch.setattr(superset, "start_service", lambda line, **kwargs: started.update(line=line, env=kwargs["env"]))
    assert superset.start(config, lambda line: None)
    assert started == {"line": argv, "env": env}

    calls.clear()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(ServiceError, match=f"port {port} .* LAKEHOUSE_DASHBOARD_PORT"):
            superset.serve(config, lambda line: None)
    assert calls == [], "the set-up ran although the port is taken"


def _dim_users(spark: SparkSession) -> DataFrame:
    """A few users' versions: upgrades and a downgrade in one month, the same plan change going
    up for two users and down for a third (the plan's price changed), a price change without a
    plan change, a user with one version, and a first version without a plan (nulls)."""
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("version_number", T.IntegerType()),
            T.StructField("changed_at", T.TimestampType()),
            T.StructField("subscription_plan", T.StringType()),
            T.StructField("monthly_price_usd", T.DecimalType(10, 2)),
        ]
    )
    rows = [
        ("u1", 1, "2026-01-05", "basic", "8.99"),
        ("u1", 2, "2026-02-10", "standard", "13.99"),
        ("u1", 3, "2026-02-20", "basic", "8.99"),
        ("u2", 1, "2026-01-01", "standard", "13.99"),
        ("u2", 2, "2026-02-03", "premium", "17.99"),
        ("u3", 1, "2026-01-01", "basic", "8.99"),
        ("u4", 1, "2026-01-01", "basic", "8.99"),
        ("u4", 2, "2026-03-01", "basic", "9.99"),
        ("u5", 1, "2026-01-01", "basic", "8.99"),
        ("u5", 2, "2026-02-28", "standard", "12.99"),
        ("u6", 1, "2026-01-01", "basic", "13.99"),
        ("u6", 2, "2026-02-15", "standard", "12.99"),
        ("u7", 1, "2026-01-01", None, None),
        ("u7", 2, "2026-02-01", "basic", "8.99"),
        ("u8", 1, "2026-03-31", "premium", "17.99"),
        ("u8", 2, "2026-04-01", "basic", "8.99"),
    ]
    parsed = [
        (u, v, datetime.fromisoformat(at), plan, None if price is None else Decimal(price))
        for u, v, at, plan, price in rows
    ]
    return spark.createDataFrame(parsed, schema)


def test_the_plan_changes_dataset_adds_up_to_the_dbt_analysis(committed: bundle.Bundle, spark: SparkSession) -> None:
    """dashboards/ repeats dbt/analyses/plan_changes.sql over gold.dim_users, split further by a
    direction (up or down in price): on the same versions, its rows summed per month and plan
    change are the analysis's rows. Either side changing its logic alone fails this."""
    _dim_users(spark).createOrReplaceTempView("plan_changes_dim_users")
    analysis_sql, uses = re.subn(
        r"\{\{\s*ref\('dim_users'\)\s*\}\}", "plan_changes_dim_users", PLAN_CHANGES_ANALYSIS.read_text()
    )
    assert uses == 1 and "{{" not in analysis_sql, "the analysis reads more than ref('dim_users'): extend this test"
    dataset = next(d for d in committed.datasets.values() if d["table_name"] == "plan_changes")
    without_comments = re.sub(r"--[^\n]*", "", dataset["sql"])
    dataset_sql, uses = re.subn(r"\bgold\.dim_users\b", "plan_changes_dim_users", without_comments)
    assert uses == 1 and "gold." not in dataset_sql, "the dataset reads more than gold.dim_users: extend this test"

    analysis = spark.sql(analysis_sql)
    split = spark.sql(dataset_sql)
    totals = split.groupBy(*PLAN_CHANGES_KEY).agg(
        F.sum("plan_changes").cast(analysis.schema["plan_changes"].dataType).alias("plan_changes"),
        F.sum("mrr_change_usd").cast(analysis.schema["mrr_change_usd"].dataType).alias("mrr_change_usd"),
    )
    assertDataFrameEqual(totals.select(*analysis.columns), analysis)
    # Not vacuous: several months and plan changes, and one of them split into up and down.
    assert analysis.count() >= 4 and split.count() == analysis.count() + 1
    # The dataset's columns are what its YAML declares (Superset's charts use them by name).
    assert set(split.columns) == {c["column_name"] for c in dataset["columns"]}


def test_lakehouse_down_stops_superset_and_dagster_with_the_services(tmp_path: Path) -> None:
    """`lakehouse down` (no names) stops the dashboards and the orchestrator too: both query or
    drive the services it stops. Stand-in processes hold their pid files."""
    import subprocess
    import sys

    from lakehouse.services import dagster
    from lakehouse.services.process import pid_alive

    config = load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "home")})
    sleepers = {}
    for pid_file in (superset.pid_file(config), dagster.pid_file(config)):
        sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{sleeper.pid}\n")
        sleepers[pid_file] = sleeper
    try:
        down = subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "down"],
            env={**os.environ, "LAKEHOUSE_HOME": str(config.home)},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=PROJECT_ROOT,
            check=False,
        )
        assert down.returncode == 0, down.stderr
        assert down.stdout.splitlines()[0] == "stopped: dagster, superset", down.stdout
        for pid_file, sleeper in sleepers.items():
            assert sleeper.wait(timeout=30) is not None and not pid_file.exists()
            assert not pid_alive(sleeper.pid)
    finally:
        for sleeper in sleepers.values():
            sleeper.kill()
            sleeper.wait()
