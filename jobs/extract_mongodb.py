"""Extract every mongodb source table into bronze Delta tables (one Spark application).

    SPARK_CONF_DIR=.lakehouse/spark-conf spark-submit jobs/extract_mongodb.py [--table T] [--full-refresh]

`lakehouse extract --source mongodb` runs exactly this (and renders the Spark conf first).
Add `--master spark://host:7077` to run on a cluster.
"""

import sys

from lakehouse.bronze.extract import main

if __name__ == "__main__":
    sys.exit(main(["--source", "mongodb", *sys.argv[1:]]))
