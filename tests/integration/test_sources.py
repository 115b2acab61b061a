"""Loading the generated sources into PostgreSQL and FerretDB, and moving them in time.

Real servers through the session ``services`` fixture; tiny data generated once per module.
The module starts with ``replace=True`` and leaves the sources loaded with tiny data.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import Config
from lakehouse.services import postgres
from lakehouse.sources.generate import generate
from lakehouse.sources.load import (
    SourceLoadError,
    drop_mongo_sources,
    drop_postgres_sources,
    load_sources,
    mongo_database,
    sources_empty,
)
from lakehouse.sources.schema import TABLES
from lakehouse.sources.simulate import simulate
from lakehouse.sources.users import MONTHLY_PRICE_USD

pytestmark = pytest.mark.integration

SEED = 42
OTHER_SEED = 43
SIMULATE_SEED = 7
CSV_TABLES = {spec.name: spec.file for spec in TABLES}
SNAPSHOT_ORDER = {"users": "user_id", "viewing_sessions": "session_id", "ratings": "user_id, content_id"}
NOOP_LOAD_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class Loaded:
    """The first load of the module and what sources_empty said around it."""

    data_dir: Path
    manifest: dict[str, Any]
    counts: dict[str, int]
    empty_before: bool
    empty_after: bool


def _quiet(_message: str) -> None:
    """A progress sink that keeps test output clean."""


@pytest.fixture(scope="module")
def data_dir(tiny_files: Path) -> Path:
    """The run's tiny generated files (seed 42, the default defect rate; read-only)."""
    assert json.loads((tiny_files / "manifest.json").read_text())["seed"] == SEED
    return tiny_files


@pytest.fixture(scope="module")
def loaded(services: Config, data_dir: Path) -> Loaded:
    """Drop whatever sources the run holds, then load the tiny files with replace=True."""
    conn = postgres.connect(services, services.postgres.database)
    try:
        drop_postgres_sources(conn)
    finally:
        conn.close()
    with mongo_database(services) as database:
        drop_mongo_sources(database)
    empty_before = sources_empty(services)
    counts = load_sources(services, data_dir, replace=True, progress=_quiet)
    return Loaded(
        data_dir=data_dir,
        manifest=json.loads((data_dir / "manifest.json").read_text()),
        counts=counts,
        empty_before=empty_before,
        empty_after=sources_empty(services),
    )


@pytest.fixture
def cursor(services: Config) -> Iterator[Any]:
    """A cursor on the source database (read-only use)."""
    conn = postgres.connect(services, services.postgres.database)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _csv_rows(path: Path) -> int:
    """Data rows of a CSV file (header excluded)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _jsonl_documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a JSON Lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pg_counts(cur: Any) -> dict[str, int]:
    """Rows per source table."""
    counts = {}
    for name in CSV_TABLES:
        cur.execute(f"select count(*) from public.{name}")
        counts[name] = cur.fetchone()[0]
    return counts


# --------------------------------------------------------------------------- load


def test_sources_empty_before_the_load_and_not_after(loaded: Loaded) -> None:
    assert loaded.empty_before is True
    assert loaded.empty_after is False


def test_loaded_counts_equal_the_files(loaded: Loaded, services: Config, cursor: Any) -> None:
    expected = {name: _csv_rows(loaded.data_dir / file) for name, file in CSV_TABLES.items()}
    documents = len(_jsonl_documents(loaded.data_dir / "content.jsonl"))

    assert _pg_counts(cursor) == expected
    with mongo_database(services) as database:
        assert database.content.count_documents({}) == documents
    assert loaded.counts == {**expected, "content": documents}
    # The files hold nominal rows plus defect extras, and the manifest agrees.
    assert expected["users"] == loaded.manifest["files"]["users.csv"]["rows"] > 1_000


def test_defective_rows_are_in_the_source(loaded: Loaded, services: Config, cursor: Any) -> None:
    defects = loaded.manifest["defects"]
    cursor.execute("select count(*) from public.users where user_id is null")
    assert cursor.fetchone()[0] == defects["users"]["null_key"]["count"] > 0
    cursor.execute("select count(*) from public.viewing_sessions where session_id is null")
    assert cursor.fetchone()[0] == defects["viewing_sessions"]["null_key"]["count"] > 0
    cursor.execute("select count(*) from public.ratings where content_id is null")
    assert cursor.fetchone()[0] == defects["ratings"]["null_key"]["count"] > 0

    duplicated = defects["users"]["duplicate_key"]["keys"]
    cursor.execute("select user_id, count(*) from public.users where user_id = any(%s) group by user_id", (duplicated,))
    assert dict(cursor.fetchall()) == dict.fromkeys(duplicated, 2)
    sessions = defects["viewing_sessions"]["duplicate_key"]["keys"]
    cursor.execute(
        "select count(distinct session_id), count(*) from public.viewing_sessions where session_id = any(%s)",
        (sessions,),
    )
    assert cursor.fetchone() == (len(sessions), 2 * len(sessions))

    with (loaded.data_dir / "users.csv").open(newline="") as handle:
        birth = {row["user_id"]: row["birth_date"] for row in csv.DictReader(handle) if row["user_id"]}
    malformed = defects["users"]["malformed_birth_date"]["keys"]
    cursor.execute("select user_id, birth_date from public.users where user_id = any(%s)", (malformed,))
    assert {str(k): v for k, v in cursor.fetchall()} == {str(k): birth[str(k)] for k in malformed}

    bad_starts = defects["viewing_sessions"]["unparseable_started_at"]["keys"]
    cursor.execute("select started_at from public.viewing_sessions where session_id = any(%s)", (bad_starts,))
    started = [row[0] for row in cursor.fetchall()]
    assert len(started) == len(bad_starts) > 0
    for value in started:
        with pytest.raises(ValueError):
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")

    with mongo_database(services) as database:
        malformed_docs = defects["content"]["malformed_updated_at"]["keys"]
        for document in database.content.find({"_id": {"$in": malformed_docs}}):
            assert isinstance(document["updated_at"], str)
        clean = database.content.find_one({"_id": {"$nin": malformed_docs}})
        assert isinstance(clean["updated_at"], datetime) and isinstance(clean["added_at"], datetime)
        assert (
            database.content.count_documents({"title": {"$exists": False}})
            == (defects["content"]["missing_title"]["count"])
        )


def test_loading_twice_is_a_no_op(loaded: Loaded, services: Config, cursor: Any) -> None:
    cursor.execute("select target, sha256, loaded_at from public.load_log order by target")
    log_before = cursor.fetchall()
    cursor.connection.rollback()
    messages: list[str] = []

    started = time.perf_counter()
    counts = load_sources(services, loaded.data_dir, progress=messages.append)
    elapsed = time.perf_counter() - started

    assert counts == loaded.counts
    assert elapsed < NOOP_LOAD_MAX_SECONDS
    assert len(messages) == 4 and all("skipped" in m for m in messages), messages
    cursor.execute("select target, sha256, loaded_at from public.load_log order by target")
    assert cursor.fetchall() == log_before
    cursor.execute("select count(*), count(distinct session_id) from public.viewing_sessions")
    rows, distinct = cursor.fetchone()
    duplicates = loaded.manifest["defects"]["viewing_sessions"]["duplicate_key"]["count"]
    nulls = loaded.manifest["defects"]["viewing_sessions"]["null_key"]["count"]
    assert rows - distinct == duplicates + nulls  # only the injected ones


def test_other_files_need_replace_and_replace_reloads(loaded: Loaded, services: Config, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(other, scale="tiny", seed=OTHER_SEED)

    with pytest.raises(SourceLoadError, match=r"users\.csv.*--replace"):
        load_sources(services, other, progress=_quiet)
    counts = load_sources(services, other, replace=True, progress=_quiet)
    assert counts["viewing_sessions"] == _csv_rows(other / "viewing_sessions.csv")
    with mongo_database(services) as database:
        assert database["_load_log"].find_one({"_id": "content"})["source_path"] == str(
            (other / "content.jsonl").resolve()
        )

    assert load_sources(services, loaded.data_dir, replace=True, progress=_quiet) == loaded.counts


def test_bad_input_gets_a_one_line_error_naming_the_file(loaded: Loaded, services: Config, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    shutil.copytree(loaded.data_dir, missing)
    (missing / "ratings.csv").unlink()
    with pytest.raises(SourceLoadError, match=r"ratings\.csv: missing"):
        load_sources(services, missing, progress=_quiet)

    renamed = tmp_path / "renamed"
    shutil.copytree(loaded.data_dir, renamed)
    users = renamed / "users.csv"
    users.write_text(users.read_text().replace('"signup_date"', '"signed_up"', 1))
    with pytest.raises(SourceLoadError, match=r"users\.csv: header does not match public\.users.*signup_date"):
        load_sources(services, renamed, progress=_quiet)

    with pytest.raises(SourceLoadError, match=r"manifest\.json: missing"):
        load_sources(services, tmp_path, progress=_quiet)


def test_a_value_postgres_rejects_names_file_line_and_column(loaded: Loaded, services: Config, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(loaded.data_dir, broken)
    users = broken / "users.csv"
    lines = users.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(lines[3].split(",")[8], '"someday"', 1)  # signup_date of line 4
    users.write_text("".join(lines))
    try:
        with pytest.raises(SourceLoadError, match=r"users\.csv: public\.users rejected a row: .*line 4.*signup_date"):
            load_sources(services, broken, replace=True, progress=_quiet)
    finally:
        load_sources(services, loaded.data_dir, replace=True, progress=_quiet)


# --------------------------------------------------------------------------- simulate


@dataclass
class Snapshot:
    """Every source row, as multisets of full rows (keys can be null or repeated) and documents by _id."""

    tables: dict[str, Counter]
    columns: dict[str, list[str]]
    content: dict[str, dict[str, Any]]
    clock: datetime


def _snapshot(config: Config) -> Snapshot:
    """Read every row of the sources and the source clock (latest updated_at anywhere)."""
    tables: dict[str, Counter] = {}
    columns: dict[str, list[str]] = {}
    latest: list[datetime] = []
    conn = postgres.connect(config, config.postgres.database)
    try:
        with conn.cursor() as cur:
            for name, order in SNAPSHOT_ORDER.items():
                cur.execute(f"select * from public.{name} order by {order}")
                columns[name] = [d.name for d in cur.description]
                rows = cur.fetchall()
                tables[name] = Counter(rows)
                position = columns[name].index("updated_at")
                latest.append(max(row[position] for row in rows))
    finally:
        conn.close()
    with mongo_database(config) as database:
        content = {d["_id"]: d for d in database.content.find({})}
    latest.extend(d["updated_at"] for d in content.values() if isinstance(d.get("updated_at"), datetime))
    return Snapshot(tables=tables, columns=columns, content=content, clock=max(latest))


def _changed(before: Snapshot, after: Snapshot, name: str) -> tuple[list[dict], list[dict]]:
    """(rows only in before, rows only in after) of one table, as dicts."""
    gone = before.tables[name] - after.tables[name]
    came = after.tables[name] - before.tables[name]
    as_dict = lambda row: dict(zip(before.columns[name], row, strict=True))  # noqa: E731
    return [as_dict(r) for r in gone.elements()], [as_dict(r) for r in came.elements()]


@pytest.fixture(scope="module")
def simulated(loaded: Loaded, services: Config) -> tuple[Snapshot, Snapshot, dict[str, int]]:
    """Fresh tiny sources, a snapshot, one simulated day, another snapshot."""
    load_sources(services, loaded.data_dir, replace=True, progress=_quiet)
    before = _snapshot(services)
    summary = simulate(services, 1, seed=SIMULATE_SEED, progress=_quiet)
    return before, _snapshot(services), summary


def _in_window(value: datetime, before: Snapshot) -> bool:
    return before.clock < value < before.clock + timedelta(days=1)


def test_simulate_touches_only_what_it_reports_and_stamps_it_inside_the_window(simulated) -> None:
    before, after, summary = simulated

    gone, came = _changed(before, after, "users")
    assert len(gone) == len(came) == sum(summary[k] for k in ("plan_changes", "paused", "resumed", "churned")) > 0
    assert {r["user_id"] for r in gone} == {r["user_id"] for r in came}
    assert all(_in_window(r["updated_at"], before) for r in came)
    assert {r["status"] for r in came} <= {"active", "paused", "churned"}
    for row in came:
        assert str(row["monthly_price"]) == MONTHLY_PRICE_USD[(row["subscription_plan"], row["billing_cycle"])]

    gone, came = _changed(before, after, "viewing_sessions")
    old_max = max(k for (k, *_rest) in before.tables["viewing_sessions"] if k is not None)
    new = [r for r in came if r["session_id"] > old_max]
    updated = [r for r in came if r["session_id"] <= old_max]
    assert len(new) == summary["new_sessions"] > 100
    assert sorted(r["session_id"] for r in new) == list(range(old_max + 1, old_max + 1 + len(new)))
    assert len(updated) == len(gone) == summary["updated_sessions"] > 0
    assert all(_in_window(r["updated_at"], before) for r in came)
    old = {r["session_id"]: r for r in gone}
    for row in updated:
        previous = old[row["session_id"]]
        assert row["watch_seconds"] > previous["watch_seconds"] and row["ended_at"] >= previous["ended_at"]
        unchanged = {"session_id", "user_id", "content_id", "episode", "started_at", "device_type", "country"}
        assert {k: row[k] for k in unchanged} == {k: previous[k] for k in unchanged}

    gone, came = _changed(before, after, "ratings")
    old_pairs = {(r[0], r[1]) for r in before.tables["ratings"]}
    new = [r for r in came if (r["user_id"], r["content_id"]) not in old_pairs]
    assert len(new) == summary["new_ratings"] > 0
    assert len(came) - len(new) == len(gone) == summary["updated_ratings"]
    assert all(_in_window(r["updated_at"], before) and 1 <= r["rating"] <= 5 for r in came)

    added = set(after.content) - set(before.content)
    corrected = [i for i in before.content if after.content[i] != before.content[i]]
    assert len(added) == summary["new_titles"] > 0
    assert len(corrected) == summary["corrected_titles"] > 0
    for content_id in added:
        document = after.content[content_id]
        assert _in_window(document["updated_at"], before) and document["added_at"] == document["updated_at"]
        assert int(content_id[1:]) > max(int(i[1:]) for i in before.content)
    for content_id in corrected:
        old_doc, new_doc = before.content[content_id], after.content[content_id]
        assert _in_window(new_doc["updated_at"], before)
        assert {k for k in new_doc if new_doc[k] != old_doc.get(k)} - {"updated_at"} <= {"title", "genres", "director"}


def test_simulated_sessions_reference_existing_users_and_titles(simulated) -> None:
    before, after, _ = simulated
    _, came = _changed(before, after, "viewing_sessions")
    users = {row[0] for row in after.tables["users"]}
    for row in came:
        assert row["user_id"] in users
        assert row["content_id"] in after.content
        started = datetime.fromisoformat(row["started_at"])
        assert datetime.fromisoformat(row["ended_at"]) >= started
        assert 0 < row["watch_seconds"] <= (datetime.fromisoformat(row["ended_at"]) - started).total_seconds()
        assert row["updated_at"] >= datetime.fromisoformat(row["ended_at"])
        if row["content_id"] not in before.content:
            assert started >= after.content[row["content_id"]]["added_at"]


def test_simulate_is_deterministic_for_a_seed_and_a_starting_state(simulated, loaded: Loaded, services: Config) -> None:
    _, first, summary = simulated
    load_sources(services, loaded.data_dir, replace=True, progress=_quiet)
    assert simulate(services, 1, seed=SIMULATE_SEED, progress=_quiet) == summary
    second = _snapshot(services)
    assert second.tables == first.tables
    assert second.content == first.content


def test_a_second_run_continues_from_the_clock(simulated, services: Config) -> None:
    before, first, _ = simulated
    start = before.clock + timedelta(days=1)  # where the first run's window ended
    summary = simulate(services, 2, seed=SIMULATE_SEED, progress=_quiet)
    second = _snapshot(services)
    _, came = _changed(first, second, "viewing_sessions")
    assert first.clock <= start
    assert summary["days"] == 2 and len(came) == summary["new_sessions"] + summary["updated_sessions"]
    assert all(start < r["updated_at"] < start + timedelta(days=2) for r in came)


def test_simulate_rejects_bad_days(services: Config) -> None:
    with pytest.raises(ValueError, match="days"):
        simulate(services, 0, progress=_quiet)


# --------------------------------------------------------------------------- CLI


def test_cli_load_sources_and_simulate(loaded: Loaded, cli) -> None:
    result = cli("load-sources", "--data", str(loaded.data_dir), "--replace")
    assert result.returncode == 0, result.stderr
    assert f"users {loaded.counts['users']:,}" in result.stdout
    assert f"viewing_sessions {loaded.counts['viewing_sessions']:,}" in result.stdout

    result = cli("simulate", "--days", "1")
    assert result.returncode == 0, result.stderr
    assert "simulated: days 1, new_sessions" in result.stdout
    assert "new_titles" in result.stdout and "corrected_titles" in result.stdout

    result = cli("load-sources", "--data", str(loaded.data_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("skipped") == 4

    result = cli("simulate", "--days", "0")
    assert result.returncode == 1 and result.stderr.startswith("lakehouse simulate: error: days")
    assert "Traceback" not in result.stderr
