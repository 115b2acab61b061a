"""What Dagster loads: ``dagster dev -m lakehouse.orchestration.definitions`` (or ``-j`` a job).

Building them parses the dbt project once per change of it (a few seconds); see location.py.
"""

from lakehouse.orchestration.location import build_definitions

defs = build_definitions()
