"""Dashboards: Apache Superset over the Thrift endpoint, with the dashboards kept as code.

What enters: the YAML of ``dashboards/`` (Superset's import format) and the lakehouse's config
(the Thrift endpoint, its password when auth is on); what leaves: a Superset server on
127.0.0.1 whose charts query the published ``gold`` views (and, for data health, ``ops`` and the
quarantine's counts) over ``hive+lakehouse://``.

install.py   Superset's own virtualenv from ``dashboards/requirements.lock``, once per lock
bundle.py    the dashboards as code: read, check, render for an import, normalise an export
superset.py  its settings file, metadata, admin, the import; start, stop and status
api.py       its REST API: log in, list charts, every chart's data (``lakehouse dashboard check``)
export.py    the running Superset's dashboards back into ``dashboards/`` (``lakehouse dashboard export``)
"""
