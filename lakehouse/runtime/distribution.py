"""The Spark distribution the project runs on: the one pip installed with pyspark."""

from __future__ import annotations

from pathlib import Path


def spark_home() -> Path:
    """The Spark distribution that pip installed with pyspark (has bin/spark-submit, bin/beeline)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def beeline_path() -> Path:
    return spark_home() / "bin" / "beeline"
