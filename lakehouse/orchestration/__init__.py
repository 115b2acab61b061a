"""The lakehouse as a Dagster code location (the optional ``dagster`` extra).

    pip install -e '.[dagster]'        (make test installs it from requirements-dagster.lock)
    dagster dev -m lakehouse.orchestration.definitions

The assets call the functions the CLI calls, so each step has one implementation and two ways
to run it: ``lakehouse pipeline`` (the default, no Dagster needed) or this code location.

    sources.<system>.<table>     the source tables (external: Dagster observes, never writes them)
    bronze.<table>               one Spark application extracts every table and runs the gate
                                 (lakehouse/pipeline: steps up, sources, extract, validate); the
                                 gate is a blocking asset check per table: a failed check stops
                                 everything downstream
    silver_build.*, gold_build.* ``dbt build`` through dagster-dbt, from a manifest that
                                 ``dbt parse`` wrote (the code location loads with the services
                                 down); each dbt test is an asset check of its model
    silver.*, gold.*             the publish asset: the views analysts read, pinned to the build's
                                 versions, materialised only when every dbt node and test passed

Nothing in ``make pipeline`` imports this package.
"""
