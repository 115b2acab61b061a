"""A Spark application that stays up and runs the pipeline's extract and validate, one run after
the other (``pipeline.ingest_server``; lakehouse/pipeline/ingest_server.py says how).

    SPARK_CONF_DIR=.lakehouse/spark-conf spark-submit jobs/ingest_server.py

`lakehouse pipeline` starts it when the setting is on and none runs; `lakehouse down` stops it.
"""

import sys

from lakehouse.pipeline.ingest_server import main

if __name__ == "__main__":
    sys.exit(main())
