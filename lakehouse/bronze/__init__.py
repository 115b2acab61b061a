"""Bronze: source-aligned Delta tables, typed by contracts, with quarantine and watermarks.

What enters: each source table's rows from its watermark minus the lookback window (PostgreSQL
over JDBC, MongoDB documents as JSON). What leaves: ``bronze.<table>`` MERGEd by key (newest
``updated_at`` wins), ``bronze.quarantine`` for what cannot be typed, ``ops.watermarks`` with
the fingerprint of the next window, and a row per table in ``ops.pipeline_runs``.

contracts.py     what each source field is typed as (the bronze schema)
readers.py       the batch of a source table, pushed down to the source
transform.py     pure: typing, errors, quarantine rows, newest row per key
writer.py        MERGE, full refresh and the quarantine table
watermarks.py    how far each table has been read
fingerprints.py  would the next extract find anything? asked of the sources without Spark
extract.py       the step: one table after another (or side by side), reconciled
"""
