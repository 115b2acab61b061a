"""Sources: the streaming platform's data, synthetic and deterministic, and its loaders.

What enters: a scale, a seed and a defect rate (or a number of days to simulate). What
leaves: files (``users.csv``, ``viewing_sessions.csv``, ``ratings.csv``, ``content.jsonl``
and ``manifest.json``), the PostgreSQL tables and MongoDB collection loaded from them, and
simulated days of new and changed rows written straight into those databases.

schema.py      the source tables and collection, stated once (columns, types, keys, files)
common.py      time units, the activity window, a scale's sizes, array helpers
people.py      the seeded Faker pools of names, places and people
users.py       users: sign-ups, plans, churn and pauses
catalogue.py   titles, series with seasons and episodes, the content documents
sessions.py    viewing sessions: when, what, on which device, how long
ratings.py     which sessions lead to a rating, the stars, edits
defects.py     the defects injected on purpose, and their keys in the manifest
csv_files.py   the CSV schemas and writer
generate.py    `lakehouse generate`: the model above written to files, with the manifest
load.py        the files into PostgreSQL (COPY) and MongoDB
simulate.py    `lakehouse simulate`: days of activity from the same model, into the databases
simulate_state.py, simulate_changes.py, simulate_sessions.py, simulate_ratings.py
               what a simulated day reads from the sources, and what it changes there
bench.py       the sources of `lakehouse bench` (generated and loaded, timed)
"""
