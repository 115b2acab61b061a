"""Serving: the Thrift endpoint's side of the lakehouse, and the client the project uses.

What enters: SQL from BI tools, dbt and the pipeline's own queries; what leaves: rows of the
published silver and gold views, never files or a reflected class. Starting and stopping the
server process is :mod:`lakehouse.services.thrift`; its settings are :mod:`lakehouse.spark`.

auth.py                the password provider's users file (PBKDF2) and its Java module
sql_client.py          the built-in SQL client over Thrift (PyHive): queries, timeouts, formatting
lockdown.py            the Thrift server's SQL lockdown extension (built by `lakehouse setup`)
pools.py               FAIR scheduler pools (bi for everyone, etl for dbt and the pipeline) and
                       the server's per-query limit for BI sessions
sqlalchemy_dialect.py  PyHive's SQLAlchemy dialect fixed for Spark (``sparkhive://``)
"""
