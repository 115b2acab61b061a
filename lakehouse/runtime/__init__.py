"""The runtime under every Spark application: the Spark distribution and what the project adds.

distribution.py  where pip's pyspark put Spark (``spark-submit``, ``beeline``, its jars)
jars.py          the jars of ``spark.packages`` resolved from Maven Central into the cache
java_build.py    the project's own Java modules (``tools/``) compiled against Spark's jars

A leaf: it imports only :mod:`lakehouse.config`, so that the Spark settings
(:mod:`lakehouse.spark`) and the Thrift server's authentication (:mod:`lakehouse.serving.auth`)
can both use it.
"""
