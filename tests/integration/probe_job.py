"""A minimal spark-submit job for the platform tests: writes a Delta table in its own application.

spark-submit tests/integration/probe_job.py <schema.table> <rows>
spark-submit tests/integration/probe_job.py <s3a://bucket/path> <rows> [<part MB>]

A URL is a path table (no metastore): the job writes it, reads it back and prints ``rows <n>``.
With a part size (run from plain Python: it is set before the JVM starts), the S3A client
uploads every file larger than that in parts of that size (a multipart upload, as it does past
128 MB by default), the rows carry 4 KB of random text each and are written as one file, and the
job prints ``file <name> <bytes>`` for each data file and ``multipart <n>``: the multipart
uploads the S3A client completed (its own statistics; executors share the driver's JVM locally).
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import functions as F

from lakehouse.config import load_config
from lakehouse.spark import build_session


def main() -> None:
    table, rows = sys.argv[1], int(sys.argv[2])
    part_mb = int(sys.argv[3]) if len(sys.argv) > 3 else None
    if part_mb:
        # Before the JVM starts: the session caches the bucket's file system with these settings.
        parts = " ".join(f"--conf spark.hadoop.fs.s3a.multipart.{k}={part_mb}M" for k in ("threshold", "size"))
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"{parts} pyspark-shell"
    config = load_config()
    spark = build_session(config, "platform-probe")
    frame = spark.range(rows).select(
        F.col("id").alias("probe_id"),
        F.concat(F.lit("title-"), F.col("id").cast("string")).alias("title"),
        (F.col("id") * F.lit(1.5)).alias("watch_hours"),
    )
    if part_mb:
        # 64 random SHA-256 digests a row: 4 KB of hex text that snappy barely shrinks (10,000 rows: 41 MB).
        digests = F.expr("concat_ws('', transform(sequence(1, 64), i -> sha2(cast(rand() as string), 256)))")
        frame = frame.withColumn("payload", digests).coalesce(1)
    if "://" in table:
        frame.write.format("delta").mode("overwrite").save(table)
        print(f"rows {spark.read.format('delta').load(table).count()}", flush=True)
        if part_mb:
            path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(table)
            fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
            for status in fs.listStatus(path):
                if status.getPath().getName().endswith(".parquet"):
                    print(f"file {status.getPath().getName()} {status.getLen()}", flush=True)
            print(f"multipart {fs.getStorageStatistics().getLong('multipart_upload_completed')}", flush=True)
    else:
        spark.sql(f"create database if not exists {table.split('.')[0]}")
        frame.write.format("delta").mode("overwrite").saveAsTable(table)
    spark.stop()


if __name__ == "__main__":
    main()
