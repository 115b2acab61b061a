"""Quality gate: Great Expectations suites on the newest bronze batch of every table (one Spark application).

    SPARK_CONF_DIR=.lakehouse/spark-conf spark-submit jobs/validate_bronze.py [--batch-id ID] [--run-id ID]

`lakehouse validate` runs exactly this (and renders the Spark conf first). Exit code 0: passed
(warnings allowed), 1: a critical expectation failed, 2: the gate could not run. Prints each
failed expectation and the path of the Data Docs. Add `--master spark://host:7077` to run on a
cluster.
"""

import sys

from lakehouse.quality.gate import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
