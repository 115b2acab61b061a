"""One-line errors: the root cause of what an executor raised, never a password."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.errors import one_line


def _raised(action) -> BaseException:
    with pytest.raises(Exception) as caught:
        action()
    return caught.value


def test_an_executor_error_is_reported_by_its_root_cause(spark) -> None:
    frame = spark.range(4, numPartitions=2).select(F.expr("assert_true(id < 3, 'record 3: watch_seconds is -60')"))
    message = one_line(_raised(frame.collect))
    assert "record 3: watch_seconds is -60" in message
    assert "An error occurred while calling" not in message and "Job aborted" not in message
    assert "\n" not in message


def test_a_value_that_cannot_be_cast_is_named_with_its_expression(spark) -> None:
    frame = spark.createDataFrame([("7",), ("seven",)], "watch_seconds string").repartition(2)
    frame.createOrReplaceTempView("sessions_text")
    query = spark.sql("select cast(watch_seconds as int) as watch_seconds from sessions_text")
    message = one_line(_raised(query.collect))
    assert message.startswith('[CAST_INVALID_INPUT] The value \'seven\' of the type "STRING" cannot be cast to "INT"')
    assert message.endswith("(in cast(watch_seconds as int))"), message


def test_a_python_worker_error_is_its_traceback_error_line(spark) -> None:
    def parse(value: int) -> int:
        raise ValueError(f"seasons[0].season_number of record {value}: not a number")

    frame = spark.range(1).select(F.udf(parse, T.IntegerType(), useArrow=False)("id"))
    assert one_line(_raised(frame.collect)) == "ValueError: seasons[0].season_number of record 0: not a number"


def test_passwords_are_scrubbed_and_long_messages_cut() -> None:
    assert one_line(RuntimeError("login as app/s3cret failed\n\tat Driver"), ["s3cret", None]) == (
        "login as app/*** failed"
    )
    assert len(one_line(RuntimeError("x" * 2000))) == 500
    # The project's own wrapping is kept: it names the source or table.
    try:
        try:
            raise OSError("[Errno 111] Connection refused")
        except OSError as exc:
            raise RuntimeError("mongodb source is unreachable after 2 attempts") from exc
    except RuntimeError as wrapped:
        assert one_line(wrapped) == "mongodb source is unreachable after 2 attempts"


def test_every_exception_of_the_project_derives_from_one_base() -> None:
    import importlib
    import inspect
    import pkgutil

    import lakehouse
    from lakehouse.errors import LakehouseError

    own = {}
    for module in pkgutil.walk_packages(lakehouse.__path__, "lakehouse."):
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.name:
                own[f"{module.name}.{name}"] = value
    assert len(own) >= 15, own
    assert [name for name, cls in own.items() if not issubclass(cls, LakehouseError)] == []


def test_the_first_line_of_a_driver_error_leaves_its_detail_out() -> None:
    from lakehouse.errors import first_line

    pymongo = "localhost:1: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: 20000.0ms)"
    assert first_line(OSError(pymongo)) == "localhost:1: [Errno 111] Connection refused"
    assert first_line(ValueError("E11000 duplicate key, full error: {'index': 0}")) == "E11000 duplicate key"
    assert first_line(RuntimeError("first\nsecond")) == "first"
    assert first_line(KeyError()) == "KeyError"
