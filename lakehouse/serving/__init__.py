"""Serving: what the Thrift endpoint enforces (the SQL lockdown) and the client pieces it ships.

lockdown.py            the Thrift server's SQL lockdown extension (built by `lakehouse setup`)
sqlalchemy_dialect.py  PyHive's SQLAlchemy dialect fixed for Spark (``sparkhive://``)
"""
