"""The Thrift server's SQL lockdown: a Spark SQL extension in Java (``tools/thrift-lockdown``).

BI users reach the server with SQL only, and SQL must expose the lakehouse's tables and
nothing else. The extension wraps the server's SQL parser and refuses, with one clear message,
``ADD JAR``/``ADD FILE``, ``CREATE FUNCTION``, ``reflect``/``java_method``, ``SELECT TRANSFORM``,
``LOAD DATA``, a ``LOCATION`` or path on a table or database, tables read by path
(``text.`file:///...```) and non-Delta sources (see ``LockdownParser.java`` for the list). It
goes into the Thrift server's ``spark.sql.extensions`` only, next to Delta's: the project's own
jobs keep full Spark SQL. ``spark.sql.runSQLOnFiles=false`` is set on the server as well.

``thrift.lockdown: false`` turns it off (for debugging on a trusted machine only).
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.config import Config
from lakehouse.runtime import java_build

MODULE = "thrift-lockdown"
EXTENSION_CLASS = "lakehouse.lockdown.LockdownExtension"
# What the extension compiles against, from pyspark's jars directory.
COMPILE_JARS = (
    "spark-catalyst_*.jar",
    "spark-sql_*.jar",
    "spark-sql-api_*.jar",
    "spark-core_*.jar",
    "spark-common-utils_*.jar",
    "scala-library-*.jar",
)
WHAT = "thrift lockdown extension"


def extension_jar(config: Config) -> Path:
    return java_build.module_jar(config, MODULE)


def build_extension(config: Config) -> Path:
    """Compile the extension into the cache once per source version; return the jar's path."""
    return java_build.build_module(config, MODULE, COMPILE_JARS, WHAT)
