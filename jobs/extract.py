"""Extract all sources (PostgreSQL and MongoDB) into bronze in one Spark application.

    SPARK_CONF_DIR=.lakehouse/spark-conf spark-submit jobs/extract.py [--source S] [--table T] [--full-refresh]

`lakehouse extract` runs exactly this (and renders the Spark conf first).
"""

import sys

from lakehouse.bronze.extract import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
