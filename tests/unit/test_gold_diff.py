"""lakehouse gold save|diff: gold against a saved copy, row by row (EXCEPT ALL both ways), and
lakehouse bench --compare: two bench results step by step. Local Spark stands in for the
Thrift endpoint: the statements are the same."""

from __future__ import annotations

import pytest

from lakehouse import gold_diff
from lakehouse.bench import compare_reports


@pytest.fixture
def query(spark):
    spark.sql("drop database if exists golddiff cascade")
    spark.sql("create database golddiff")
    spark.sql("create table golddiff.kpis as select * from values (1, 'a'), (2, 'b'), (2, 'b') as t(id, name)")
    spark.sql("create table golddiff.dims as select * from values (10, 0.5) as t(sk, share)")
    yield lambda sql: [tuple(row) for row in spark.sql(sql).collect()]
    spark.sql("drop database if exists golddiff cascade")
    spark.sql("drop database if exists gold_saved_unit cascade")


def test_an_unchanged_gold_is_equal_to_its_copy(query) -> None:
    assert gold_diff.save(query, "unit", source="golddiff") == ["dims", "kpis"]
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert equal, text
    assert text.splitlines() == [
        "dims: equal (1 row)",
        "kpis: equal (3 rows)",
        "gold: all 2 relations equal, row for row",
    ]


def test_a_lost_duplicate_a_changed_row_a_dropped_and_a_new_table_are_named(query) -> None:
    gold_diff.save(query, "unit", source="golddiff")
    query("insert overwrite golddiff.kpis select * from values (1, 'a'), (2, 'b') as t(id, name)")  # one 2 lost
    query("drop table golddiff.dims")
    query("create table golddiff.extra as select 1 as id")
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert not equal
    assert text.splitlines() == [
        "dims: missing from gold now (the copy has it)",
        "kpis: DIFFERS: 0 rows only in gold now, 1 row only in the saved copy (2 rows now)",
        "extra (new, not in the copy): DIFFERS: 1 row only in gold now, 0 rows only in the saved copy (1 row now)",
        "gold: 3 of 3 relations differ",
    ]


def test_a_double_off_in_its_last_digits_is_equal_to_twelve_digits_and_one_off_by_more_differs(query) -> None:
    """The same standard deviation summed in another order differs in its last binary digits:
    equal to 12 significant digits, said so; a double off in its 8th digit is a difference."""
    query("create table golddiff.stats as select * from values (1, 0.9282858164540051D), (2, 12345.678D) as t(id, sd)")
    gold_diff.save(query, "unit", source="golddiff")
    query("insert overwrite golddiff.stats select * from values (1, 0.9282858164540005D), (2, 12345.678D) as t(id, sd)")
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert equal, text
    assert (
        "stats: equal to 12 significant digits (2 rows; 1 row differing beyond that in a floating-point column)" in text
    )
    assert text.splitlines()[-1] == (
        "gold: all 3 relations equal, row for row (1 to 12 significant digits of a floating-point column)"
    )

    query("insert overwrite golddiff.stats select * from values (1, 0.9282858164540005D), (2, 12345.679D) as t(id, sd)")
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert not equal
    assert "stats: DIFFERS: 2 rows only in gold now, 2 rows only in the saved copy (2 rows now)" in text


def test_a_bad_name_or_nothing_saved_is_one_clear_line(query) -> None:
    with pytest.raises(gold_diff.GoldDiffError, match="must be lower-case"):
        gold_diff.save(query, "Before; drop", source="golddiff")
    with pytest.raises(gold_diff.GoldDiffError, match="nothing saved as 'never'"):
        gold_diff.compare(query, "never", source="golddiff")


def _run(seconds: float, transform: float, tests: int) -> dict:
    steps = {"extract": {"seconds": seconds - transform}, "transform": {"seconds": transform}}
    groups = {"test": {"nodes": tests, "seconds": tests * 1.5}}
    profile = [{"step": "transform", "table": None, "profile": {"dbt_groups": groups}}]
    return {"seconds": seconds, "steps": steps, "profile": profile}


def test_two_bench_results_are_compared_step_by_step() -> None:
    before = {"scale": "small", "load_average_at_start": [1.04, 2, 3], "full": _run(300, 150, 148)}
    after = {"scale": "small", "load_average_at_start": [0.96, 2, 3], "full": _run(200, 60, 29)}
    text = compare_reports(before, after).splitlines()
    assert "load average at start (1, 5, 15 min): before [1.0, 2, 3], after [1.0, 2, 3]" in text
    assert "  transform       150.0       60.0  -90.0 s (-60%)" in text
    assert "  total           300.0      200.0  -100.0 s (-33%)" in text
    assert "  dbt test        222.0       43.5  -178.5 s (-80%), nodes 148 -> 29 (thread seconds)" in text


def test_two_doubles_either_side_of_a_rounding_boundary_are_equal_to_eleven_digits(query) -> None:
    """0.12345678901249997 and ...50003 are four binary digits apart, but at 12 significant
    digits they round to ...012 and ...013: compared again at 11 they are equal, and said so."""
    query("create table golddiff.shares as select * from values (1, 0.12345678901249997D) as t(id, share)")
    gold_diff.save(query, "unit", source="golddiff")
    query("insert overwrite golddiff.shares select * from values (1, 0.12345678901250003D) as t(id, share)")
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert equal, text
    assert "shares: equal to 11 significant digits (1 row; 1 row differing beyond that in a floating-point column)" in (
        text
    )
    assert text.splitlines()[-1].endswith("(1 to 11 significant digits of a floating-point column)")


def test_when_a_run_read_the_rows_is_not_compared_and_the_report_says_so(query) -> None:
    """Two loads of the same sources stamp every row with their own _ingested_at: equal anyway;
    any other column still counts."""
    query("create table golddiff.facts as select 1 as id, timestamp'2026-01-01 00:00:00' as _ingested_at")
    gold_diff.save(query, "unit", source="golddiff")
    query("insert overwrite golddiff.facts select 1 as id, timestamp'2026-01-02 00:00:00' as _ingested_at")
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert equal, text
    assert "facts: equal (1 row; _ingested_at not compared)" in text

    query("insert overwrite golddiff.facts select 2 as id, timestamp'2026-01-01 00:00:00' as _ingested_at")
    equal, text = gold_diff.report(gold_diff.compare(query, "unit", source="golddiff"))
    assert not equal
    assert (
        "facts: DIFFERS: 1 row only in gold now, 1 row only in the saved copy (1 row now; _ingested_at not compared)"
        in (text)
    )
