"""Modeling: bronze -> silver and gold, with dbt-spark over the Thrift server.

What enters: the bronze tables at the Delta versions the quality gate passed (dbt reads them
pinned, ``dbt/macros/validated_version.sql``). What leaves: the silver and gold views BI tools
read, pinned to the build that passed every test.

runner.py   the dbt runner: its environment (from the config), ``dbt build`` in the build
            schemas, failures by name from ``run_results.json``, the node timings for the profile
publish.py  write-audit-publish: only a build that passed becomes visible in silver and gold
"""
