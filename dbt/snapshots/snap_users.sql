{#-
    The users' SCD2 history (configuration, tests and columns in snap_users.yml).

    Its input is the users ingested after the newest `_ingested_at` it holds: a user whose row
    bronze has not received again cannot have changed. With hard_deletes: ignore, a user left
    out of the input is left alone, so this records the same versions as the whole table
    would, and compares a few hundred rows a day instead of every user. The first run (no
    table yet) reads every user. The mark errs low (a user re-ingested without a change of
    the tracked columns records no version, and is compared again next time), never high.
-#}
{% snapshot snap_users %}

    select * from {{ ref('stg_postgres__users') }}
    {%- if execute and load_relation(this) is not none %}
    where _ingested_at > {{ high_water_mark(this, '_ingested_at') }}
    {%- endif %}

{% endsnapshot %}
