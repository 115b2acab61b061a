"""Serving: what the Thrift endpoint enforces (the SQL lockdown) and the client pieces it ships.

lockdown.py            the Thrift server's SQL lockdown extension (built by `lakehouse setup`)
pools.py               FAIR scheduler pools (bi for everyone, etl for dbt and the pipeline) and
                       the server's per-query limit for BI sessions
sqlalchemy_dialect.py  PyHive's SQLAlchemy dialect fixed for Spark (``sparkhive://``)
"""
