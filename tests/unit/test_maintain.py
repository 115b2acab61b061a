"""The maintain step's decisions, from a table's Delta history: OPTIMIZE by small files since
the last one, VACUUM at most every so many hours, and never while a published view reads an
older version of a build table (lakehouse/pipeline/maintain.py)."""

from __future__ import annotations

import datetime as dt

from lakehouse.config import PipelineConfig
from lakehouse.pipeline.maintain import (
    Commit,
    commits,
    pinned_versions,
    plan,
    published_view,
    small_files_since_optimize,
)
from lakehouse.serving.sql_client import QueryResult

NOW = dt.datetime(2026, 12, 6, 12, 0)
SETTINGS = PipelineConfig(vacuum_interval_hours=24, optimize_min_small_files=4)
MB = 1024 * 1024


def _history(*commits: tuple[str, int, int | None, float]) -> list[Commit]:
    """(operation, files added, bytes added, hours ago), oldest first -> newest first."""
    made = []
    for version, (operation, files, written, hours_ago) in enumerate(commits):
        metrics = {"numFiles": str(files)} if operation == "WRITE" else {"numTargetFilesAdded": str(files)}
        if written is not None:
            metrics["numOutputBytes" if operation == "WRITE" else "numTargetBytesAdded"] = str(written)
        made.append(Commit(version, NOW - dt.timedelta(hours=hours_ago), operation, metrics))
    return made[::-1]


def test_small_files_count_since_the_last_optimize_and_large_files_do_not() -> None:
    history = _history(
        ("WRITE", 40, 40 * MB, 50),  # the first load: 40 files of 1 MB
        ("OPTIMIZE", 1, 40 * MB, 49),
        ("MERGE", 2, 2 * MB, 3),
        ("MERGE", 3, 300 * MB, 2),  # 100 MB files: not small
        ("MERGE", 1, None, 1),  # no byte count: counted as small
    )
    assert small_files_since_optimize(history) == 3
    decided = plan(history, NOW, SETTINGS, complete=True)
    assert (decided.optimize, decided.small_files) == (False, 3)
    more = [Commit(5, NOW, "MERGE", {"numTargetFilesAdded": "1", "numTargetBytesAdded": "1024"}), *history]
    assert plan(more, NOW, SETTINGS, complete=True).optimize


def test_a_whole_rewrite_starts_the_count_again() -> None:
    """dbt's table models and full refreshes: one file per partition, nothing to merge."""
    appended = _history(("WRITE", 30, 30 * MB, 5), ("MERGE", 2, 2 * MB, 1))
    assert small_files_since_optimize(appended) == 32
    rebuilt = [Commit(2, NOW, "CREATE OR REPLACE TABLE AS SELECT", {"numFiles": "90", "numOutputBytes": "90"})]
    assert small_files_since_optimize(rebuilt + appended) == 0
    overwrite = Commit(2, NOW, "WRITE", {"numFiles": "90"}, '{"mode":"Overwrite","partitionBy":"[]"}')
    assert small_files_since_optimize([overwrite, *appended]) == 0
    merged = Commit(3, NOW, "MERGE", {"numTargetFilesAdded": "3", "numTargetBytesAdded": "3"})
    assert small_files_since_optimize([merged, overwrite, *appended]) == 3


def test_vacuum_at_most_every_interval_and_not_before_the_table_is_that_old() -> None:
    young = _history(("WRITE", 1, MB, 5), ("MERGE", 1, MB, 1))
    assert not plan(young, NOW, SETTINGS, complete=True).vacuum
    old = _history(("WRITE", 1, MB, 30), ("MERGE", 1, MB, 1))
    assert plan(old, NOW, SETTINGS, complete=True).vacuum
    vacuumed = _history(("WRITE", 1, MB, 60), ("VACUUM START", 0, 0, 10), ("VACUUM END", 0, 0, 10), ("MERGE", 1, MB, 1))
    assert not plan(vacuumed, NOW, SETTINGS, complete=True).vacuum
    assert plan(vacuumed, NOW + dt.timedelta(hours=15), SETTINGS, complete=True).vacuum
    # The window does not reach the first commit and holds no VACUUM: due (VACUUM is safe).
    assert plan(young, NOW, SETTINGS, complete=False).vacuum


def test_a_build_table_is_vacuumed_only_while_its_view_reads_the_newest_version() -> None:
    history = _history(
        ("CREATE OR REPLACE TABLE AS SELECT", 1, MB, 48), ("CREATE OR REPLACE TABLE AS SELECT", 1, MB, 30)
    )
    assert plan(history, NOW, SETTINGS, complete=True, published_version=1, read_by_view=True).vacuum
    assert not plan(history, NOW, SETTINGS, complete=True, published_version=0, read_by_view=True).vacuum
    assert not plan(history, NOW, SETTINGS, complete=True, published_version=-1, read_by_view=True).vacuum
    assert not plan(history, NOW, SETTINGS, complete=True, published_version=None, read_by_view=True).vacuum
    assert published_view("gold_build.fct_ratings") == "gold.fct_ratings"
    assert published_view("bronze.users") is None


def test_the_bronze_versions_the_published_staging_views_read_are_found() -> None:
    """A silver staging view reads bronze at the version the gate passed; maintain keeps the
    files of the oldest version any view reads (as SHOW CREATE TABLE renders the views)."""
    texts = [
        "CREATE VIEW silver.stg_postgres__users ( user_id COMMENT 'id', email) AS with source as "
        "( select * from bronze.users version as of 12 ), renamed as (select user_id from source) "
        "select * from renamed",
        "CREATE VIEW silver.stg_x AS select * from `bronze`.`viewing_sessions` VERSION AS OF 7",
        "CREATE VIEW silver.stg_y AS select * from bronze.users version as of 9",
        "CREATE VIEW silver.snap AS select * from silver_build.snap_users version as of 3",
        "CREATE VIEW silver.int_a AS select * from silver.stg_postgres__users",
    ]
    assert pinned_versions(texts) == {
        "bronze.users": 9,
        "bronze.viewing_sessions": 7,
        "silver_build.snap_users": 3,
    }
    history = _history(("WRITE", 1, MB, 48), ("MERGE", 1, MB, 40), ("MERGE", 1, MB, 30))
    assert not plan(history, NOW, SETTINGS, complete=True, published_version=1, read_by_view=True).vacuum
    assert plan(history, NOW, SETTINGS, complete=True, published_version=2, read_by_view=True).vacuum


def test_a_history_is_read_as_the_thrift_server_renders_it() -> None:
    """operationParameters comes with unescaped quotes inside its values: never parsed as JSON."""
    columns = ["version", "timestamp", "operation", "operationParameters", "operationMetrics"]
    rows = [
        (
            7,
            "2026-12-06 03:19:05.369000",
            "CHANGE COLUMNS",
            '{"columns":"[{"name":"_content_id","type":"string"}]"}',
            "{}",
        ),
        (
            6,
            "2026-12-06 03:19:04.868000",
            "MERGE",
            '{"predicate":"["(session_id#1 = session_id#2)"]","matchedPredicates":"[{"actionType":"update"}]"}',
            '{"numTargetFilesAdded":"2","numTargetBytesAdded":"4096","numOutputRows":"10"}',
        ),
        (5, "2026-12-06 03:10:00", "WRITE", '{"mode":"Overwrite","partitionBy":"[]"}', '{"numFiles":"90"}'),
    ]
    history = commits(QueryResult(columns, rows))
    assert [c.version for c in history] == [7, 6, 5]
    assert history[1].metrics["numTargetFilesAdded"] == "2"
    assert history[2].rewrites_the_table and not history[1].rewrites_the_table
    assert small_files_since_optimize(history) == 2
