"""The pipeline: the steps behind `lakehouse pipeline`, in order, one writer at a time.

    up -> sources -> extract -> validate -> transform -> maintain -> summary

What enters: the options of a run (`lakehouse pipeline ...`); what leaves: the lakehouse moved
on by the steps that had something to do, a row per step and table in ``ops.pipeline_runs``
(one commit), and the summary. Each step is a call into the layer that does the work: ``up``
starts the local services (:mod:`lakehouse.services`), ``sources`` generates and loads a scale
when the sources are empty (:mod:`lakehouse.sources`), ``extract`` and ``validate`` run in Spark
(:mod:`lakehouse.bronze`, :mod:`lakehouse.quality`; all tables inside, and started only when the
decision finds something to do): one application for both when the extract has something to
do (ingest.py), else one for the gate alone when it has; ``transform`` runs dbt
(:mod:`lakehouse.modeling`), ``maintain`` OPTIMIZEs and VACUUMs what changed. A failed gate
stops the run before ``transform``, so silver and gold keep serving the last good data.

context.py    Options, Context (with its SQL over Thrift), StepResult and the step errors
decisions.py  is there anything to extract or validate? asked without Spark, bounded
jobs.py       spark-submit of the job files, output relayed, profile and timeout
ingest.py     extract then validate in one Spark application (jobs/ingest.py; callable as a function)
steps.py      up, sources, extract, validate, transform
maintain.py   OPTIMIZE and VACUUM by the retention policy; the ops tables kept small
summary.py    the run's rows in ops.pipeline_runs, the summary table, the profile
lock.py       the writer lock (a file lock, then PostgreSQL's advisory lock)
run.py        the steps in order, retries of transient errors, :func:`run_pipeline`

Transient failures (a source or server not answering yet) are retried with backoff a bounded
number of times; real failures (a failed gate, a SQL error) stop the run at once.
"""
