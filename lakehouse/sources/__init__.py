"""Sources: the streaming platform's data, synthetic and deterministic, and its loaders.

What enters: a scale, a seed and a defect rate (or a number of days to simulate). What
leaves: files (``users.csv``, ``viewing_sessions.csv``, ``ratings.csv``, ``content.jsonl``
and ``manifest.json``), the PostgreSQL tables and MongoDB collection loaded from them, and
simulated days of new and changed rows written straight into those databases.

generate.py   the synthetic model and the files it writes
defects.py    the defects injected on purpose, and their keys in the manifest
load.py       the files into PostgreSQL (COPY) and MongoDB, with their DDL
simulate.py   days of activity: new users, sessions, ratings, plan changes, edits, late rows
bench.py      the sources of `lakehouse bench` (generated and loaded, timed)
"""
