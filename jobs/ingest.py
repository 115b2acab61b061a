"""Extract all sources into bronze, then the quality gate, in one Spark application.

    SPARK_CONF_DIR=.lakehouse/spark-conf spark-submit jobs/ingest.py --run-id ID [--table T] [--full-refresh]

`lakehouse pipeline` runs this when its validate step follows extract (lakehouse/pipeline/ingest.py).
Exit code 0: extracted and the gate passed or had nothing to validate; 1: a table's extract
failed (the gate did not run); 3: the gate failed; 4: the gate could not run.
"""

import sys

from lakehouse.pipeline.ingest import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
