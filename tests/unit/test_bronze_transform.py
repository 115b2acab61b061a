"""Pure bronze transformations on small inline DataFrames (typing, rescue, quarantine, dedup)."""

from __future__ import annotations

import datetime as dt
import json

from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.bronze import contracts as C
from lakehouse.bronze import transform as X

RATINGS_RAW = "user_id bigint, content_id string, rating smallint, rated_at timestamp, updated_at timestamp"
TS = dt.datetime(2026, 1, 2, 3, 4, 5)


def _checked_users(spark, rows):
    raw = spark.createDataFrame(
        rows, "user_id string, birth_date string, monthly_price string, updated_at string, loyalty_tier string"
    )
    return X.with_errors(X.with_postgres_fields(raw, C.USERS), C.USERS)


def test_postgres_rows_are_typed_and_unknown_columns_rescued(spark) -> None:
    checked = _checked_users(
        spark,
        [
            ("1", "2000-02-29", "9.99", "2026-01-01 10:00:00", "gold"),
            ("2", None, None, "2026-01-01 11:00:00", None),
        ],
    )
    actual = checked.select("user_id", "birth_date", "monthly_price", "updated_at", C.RESCUED_DATA, X.ERRORS)
    expected = spark.createDataFrame(
        [
            (1, dt.date(2000, 2, 29), "9.99", dt.datetime(2026, 1, 1, 10), '{"loyalty_tier":"gold"}', []),
            (2, None, None, dt.datetime(2026, 1, 1, 11), None, []),
        ],
        "user_id bigint, birth_date date, monthly_price string, updated_at timestamp, _rescued_data string, "
        "_errors array<string>",
    ).withColumn("monthly_price", F.col("monthly_price").cast("decimal(10,2)"))
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_untypable_values_and_missing_keys_are_reported_per_field(spark) -> None:
    checked = _checked_users(
        spark,
        [
            (None, "2000-01-01", "1.00", "2026-01-01 10:00:00", None),
            ("7", "not-a-date", "1.00", "2026-01-01 10:00:00", None),
            ("x7", "2000-01-01", "1.00", None, None),
        ],
    )
    errors = [r[X.ERRORS] for r in checked.select(X.ERRORS).collect()]
    assert errors == [
        ["user_id: missing"],
        ["birth_date: cannot read 'not-a-date' as date"],
        ["user_id: cannot read 'x7' as bigint", "updated_at: missing"],
    ]
    assert X.filter_valid(checked).count() == 0


def test_quarantine_rows_keep_the_raw_payload_key_and_reason(spark) -> None:
    raw = spark.createDataFrame([(5, None, 3, TS, TS), (6, "c1", 4, TS, TS)], RATINGS_RAW)
    checked = X.with_errors(X.with_postgres_fields(raw, C.RATINGS), C.RATINGS)
    quarantined = X.to_quarantine(checked, C.RATINGS, "batch-1", F.lit(TS)).collect()
    assert len(quarantined) == 1
    row = quarantined[0]
    assert (row.source_system, row.source_table, row.record_key) == ("postgres", "ratings", "5|")
    assert row.reason == "content_id: missing"
    assert json.loads(row.payload)["rating"] == 3
    assert row.batch_id == "batch-1"


def test_documents_keep_nesting_rescue_unknown_fields_and_catch_wrong_types(spark) -> None:
    documents = [
        {
            "_id": "c1",
            "title": "Show",
            "type": "series",
            "genres": ["Drama"],
            "seasons": [
                {"season_number": 1, "episodes": [{"episode_number": 1, "title": "Pilot", "duration_minutes": 42}]}
            ],
            "trailer_url": "http://example/t",
            "updated_at": "2026-01-01T00:00:00.000Z",
        },
        {"_id": "c2", "title": "Film", "release_year": "nineteen", "updated_at": "2026-01-01T00:00:00.000Z"},
        {"_id": "c3", "title": "Late", "updated_at": "yesterday"},
    ]
    frame = spark.createDataFrame([(json.dumps(d),) for d in documents], f"{X.DOCUMENT} string")
    checked = X.with_errors(X.with_document_fields(frame, C.CONTENT), C.CONTENT).orderBy("content_id")
    rows = checked.collect()
    assert checked.schema["seasons"].dataType == C.CONTENT.schema["seasons"].dataType
    assert rows[0].seasons[0].episodes[0].duration_minutes == 42
    assert json.loads(rows[0][C.RESCUED_DATA]) == {"trailer_url": "http://example/t"}
    assert rows[0][X.ERRORS] == []
    assert rows[1][X.ERRORS] == ["release_year: cannot read 'nineteen' as int"]
    assert rows[2][X.ERRORS] == ["updated_at: cannot read 'yesterday' as timestamp"]
    assert rows[1][C.RESCUED_DATA] is None


def test_latest_row_per_key_wins_deterministically(spark) -> None:
    older, newer = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    rows = [
        (1, "c1", 3, older, older),
        (1, "c1", 5, newer, newer),
        (2, "c1", 4, older, older),
        (2, "c1", 1, older, older),  # same key, same updated_at: a tie
    ]

    def latest(input_rows: list) -> dict:
        raw = spark.createDataFrame(input_rows, RATINGS_RAW).repartition(2)
        checked = X.with_errors(X.with_postgres_fields(raw, C.RATINGS), C.RATINGS)
        return {(r.user_id, r.content_id): r.rating for r in X.filter_latest_per_key(checked, C.RATINGS).collect()}

    forward, backward = latest(rows), latest(list(reversed(rows)))
    assert forward[(1, "c1")] == 5
    assert len(forward) == 2
    assert forward == backward


def test_the_narrowed_batch_writes_the_same_rows_and_quarantines_the_same_payloads(spark) -> None:
    older, newer = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    rows = [
        (1, "c1", 3, older, older),
        (1, "c1", 5, newer, newer),
        (2, "c1", 4, older, older),
        (2, "c1", 1, older, older),  # a tie: the payload's hash decides
        (3, "c1", 2, older, None),  # no updated_at: quarantined
        (None, "c1", 2, older, older),  # no key: quarantined
    ]
    checked = X.with_errors(
        X.with_postgres_fields(spark.createDataFrame(rows, RATINGS_RAW).repartition(2), C.RATINGS), C.RATINGS
    )
    narrow = X.for_the_writes(checked, C.RATINGS)
    assert not [
        c for c in narrow.columns if c.startswith(X.RAW_PREFIX) and c not in ("__raw_user_id", "__raw_content_id")
    ]
    assert narrow.filter(F.size(X.ERRORS) == 0).filter(F.col(X.PAYLOAD).isNotNull()).count() == 0

    def written(frame):
        latest = X.filter_latest_per_key(X.filter_valid(frame), C.RATINGS)
        return X.with_ingest_metadata(latest, C.RATINGS, "b1", F.lit(TS))

    assert_df_equality(written(narrow), written(checked), ignore_row_order=True)
    assert_df_equality(
        X.to_quarantine(narrow, C.RATINGS, "b1", F.lit(TS)),
        X.to_quarantine(checked, C.RATINGS, "b1", F.lit(TS)),
        ignore_row_order=True,
    )
    assert X.to_quarantine(narrow, C.RATINGS, "b1", F.lit(TS)).count() == 2


def test_a_version_an_operator_moved_is_held_and_a_newer_version_or_an_edit_is_not(spark) -> None:
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, 123456)
    moved_rows = [(1, "c1", 3, stamp, stamp), (2, "c1", 4, stamp, stamp), (3, "c1", 1, stamp, stamp)]
    moved_rows += [(4, "c1", 4, stamp, stamp), (4, "c1", 2, stamp - dt.timedelta(days=1), stamp)]
    # What `lakehouse quarantine` stores: the whole bronze row as JSON, record key as text.
    bronze = X.with_ingest_metadata(
        X.with_errors(X.with_postgres_fields(spark.createDataFrame(moved_rows, RATINGS_RAW), C.RATINGS), C.RATINGS),
        C.RATINGS,
        "b0",
        F.lit(TS),
    )
    moved = bronze.select(
        X.stored_record_key(C.RATINGS).alias("record_key"),
        F.to_json(F.struct("*"), C.RECORD_JSON_OPTIONS).alias("payload"),
    )
    batch = [
        (1, "c1", 3, stamp, stamp),  # the same version, read again: held
        (2, "c1", 5, stamp, stamp),  # an edit that kept updated_at: not held
        (3, "c1", 1, stamp, stamp - dt.timedelta(days=1)),  # an older version: held
        (4, "c1", 4, stamp, stamp + dt.timedelta(microseconds=1)),  # newer: not held
        (5, "c1", 4, stamp, stamp),  # never moved: not held
    ]
    checked = X.with_errors(X.with_postgres_fields(spark.createDataFrame(batch, RATINGS_RAW), C.RATINGS), C.RATINGS)
    held = {r.user_id: r[X.HELD] for r in X.with_held(checked, moved, C.RATINGS).collect()}
    assert held == {1: True, 2: False, 3: True, 4: False, 5: False}
    unreadable = moved.withColumn("payload", F.lit("{not json"))
    assert not any(r[X.HELD] for r in X.with_held(checked, unreadable, C.RATINGS).collect())


def test_ingest_metadata_columns_follow_the_contract(spark) -> None:
    raw = spark.createDataFrame([(1, "c1", 3, TS, TS)], RATINGS_RAW)
    checked = X.with_errors(X.with_postgres_fields(raw, C.RATINGS), C.RATINGS)
    bronze = X.with_ingest_metadata(checked, C.RATINGS, "b1", F.lit(TS))
    assert bronze.schema.fieldNames() == C.RATINGS.bronze_schema.fieldNames()
    row = bronze.first()
    assert (row[C.BATCH_ID], row[C.SOURCE_SYSTEM], row[C.INGESTED_AT]) == ("b1", "postgres", TS)
    assert isinstance(bronze.schema["rating"].dataType, T.IntegerType)


def test_an_updated_at_in_the_future_is_an_error_with_the_value(spark) -> None:
    raw = spark.createDataFrame([(1, "c1", 4, TS, TS), (2, "c2", 5, TS, dt.datetime(2099, 1, 1))], RATINGS_RAW)
    latest = F.lit(TS + dt.timedelta(minutes=60)).cast("timestamp")
    checked = X.with_errors(X.with_postgres_fields(raw, C.RATINGS), C.RATINGS, latest=latest, tolerance_minutes=60)
    errors = {r.user_id: r[X.ERRORS] for r in checked.select("user_id", X.ERRORS).collect()}
    assert errors[1] == []
    assert errors[2] == [
        "updated_at: 2099-01-01 00:00:00 is in the future (more than 60 min after the extract started; "
        "a mis-set clock at the source?)"
    ]


def test_a_nested_value_that_cannot_be_typed_names_its_path(spark) -> None:
    """The whole document goes to quarantine; it does not land with that one value null."""
    episodes = [{"episode_number": 1, "title": "Pilot", "duration_minutes": 42}]
    documents = [
        {"_id": "c1", "title": "Fine", "seasons": [{"season_number": 1, "episodes": episodes}], "updated_at": "2026"},
        {
            "_id": "c2",
            "title": "Wrong",
            "seasons": [
                {"season_number": 1, "episodes": episodes},
                {"season_number": "one", "episodes": [{"episode_number": 2, "duration_minutes": "long"}]},
            ],
            "updated_at": "2026",
        },
    ]
    frame = spark.createDataFrame([(json.dumps(d),) for d in documents], f"{X.DOCUMENT} string")
    checked = X.with_errors(X.with_document_fields(frame, C.CONTENT), C.CONTENT)
    errors = {r.content_id: r[X.ERRORS] for r in checked.select("content_id", X.ERRORS).collect()}
    assert errors == {
        "c1": [],
        "c2": [
            "seasons[1].season_number: cannot read 'one' as int",
            "seasons[1].episodes[0].duration_minutes: cannot read 'long' as int",
        ],
    }
    assert X.NESTED_ERRORS not in checked.columns
    assert [r.content_id for r in X.filter_valid(checked).collect()] == ["c1"]
    quarantined = X.to_quarantine(checked, C.CONTENT, "b1", F.lit(TS)).collect()
    assert [json.loads(r.payload)["seasons"][1]["season_number"] for r in quarantined] == ["one"]


def test_a_tie_on_updated_at_keeps_the_later_extracts_row_when_it_differs(spark) -> None:
    from lakehouse.bronze.writer import replaces_stored_row

    contract = C.Contract(
        "postgres",
        "things",
        ("id",),
        (
            C.Field("id", T.IntegerType(), True),
            C.Field("title", T.StringType()),
            C.Field("updated_at", T.TimestampType()),
        ),
    )
    noon, later = dt.datetime(2026, 1, 1, 12), dt.datetime(2026, 1, 1, 13)
    schema = "id int, title string, updated_at timestamp, _rescued_data string"
    stored = spark.createDataFrame(
        [
            (1, "a", noon, None),
            (2, "a", noon, None),
            (3, "a", later, None),
            (4, None, noon, None),
            (5, "a", noon, None),
        ],
        schema,
    )
    batch = spark.createDataFrame(
        [
            (1, "a", later, None),  # newer: replaces
            (2, "b", noon, None),  # same updated_at, another edit read later: replaces
            (3, "b", noon, None),  # older: never replaces
            (4, None, noon, None),  # the same row read again (nulls equal): no change
            (5, "a", noon, '{"x":1}'),  # a rescued column appeared: replaces
        ],
        schema,
    )
    joined = batch.alias("s").join(stored.alias("t"), F.col("s.id") == F.col("t.id"))
    replaced = {row.id for row in joined.filter(F.expr(replaces_stored_row(contract))).select("s.id").collect()}
    assert replaced == {1, 2, 5}
