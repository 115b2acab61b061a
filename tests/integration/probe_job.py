"""A minimal spark-submit job for the platform tests: writes a Delta table in its own application.

spark-submit tests/integration/probe_job.py <schema.table> <rows>
spark-submit tests/integration/probe_job.py <s3a://bucket/path> <rows>

A URL is a path table (no metastore): the job writes it, reads it back and prints ``rows <n>``.
"""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from lakehouse.config import load_config
from lakehouse.spark import build_session


def main() -> None:
    table, rows = sys.argv[1], int(sys.argv[2])
    config = load_config()
    spark = build_session(config, "platform-probe")
    frame = spark.range(rows).select(
        F.col("id").alias("probe_id"),
        F.concat(F.lit("title-"), F.col("id").cast("string")).alias("title"),
        (F.col("id") * F.lit(1.5)).alias("watch_hours"),
    )
    if "://" in table:
        frame.write.format("delta").mode("overwrite").save(table)
        print(f"rows {spark.read.format('delta').load(table).count()}", flush=True)
    else:
        spark.sql(f"create database if not exists {table.split('.')[0]}")
        frame.write.format("delta").mode("overwrite").saveAsTable(table)
    spark.stop()


if __name__ == "__main__":
    main()
