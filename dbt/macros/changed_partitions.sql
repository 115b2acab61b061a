{#-
    Incremental models downstream of an incremental table, from its Delta change data feed.

    A mart that aggregates a fact by one of its partition columns (mart_daily_kpis: the
    sessions of a day) need not read the whole fact on every run: only the partitions where a
    row it reads was inserted, deleted or changed since its last build. The fact records its
    changes (`delta.enableChangeDataFeed`, see ensure_change_data_feed); the mart records the
    fact's version it was built from (a table property, record_upstream_version, as a
    post-hook); changed_partitions reads the fact's changes between the two:

    - an insert or a delete touches its row's partition;
    - an update touches the partitions of its pre- and post-image (a session corrected to
      another day leaves one day and joins another), but only when one of the `columns` the
      mart reads differs: the fact's MERGE rewrites every session of a changed user with its
      new user_sk, which no mart of sessions by day reads.

    It returns none when the mart must be recomputed whole: no version recorded (a mart built
    before this), a fact without a change feed, or a fact that went through anything but
    MERGE, appends, OPTIMIZE, column comments and a VACUUM that kept the range's change files
    since, or whose log no longer reaches back to that version (a replace, a VACUUM whose
    retention reached into the range, log clean-up: the feed of the range may be incomplete or
    gone). A full recompute gives the same rows; it only costs more. (maintain VACUUMs a table
    at most daily with a week's retention: the day after a VACUUM still reads the feed.)
-#}

{% macro upstream_version_property(upstream) -%}
    lakehouse.upstream_version.{{ upstream.identifier }}
{%- endmacro %}


{#- The table properties of a relation, as a dict (one SHOW TBLPROPERTIES; none at parse time). -#}
{% macro table_properties(relation) %}
    {%- set properties = {} -%}
    {%- if not execute -%}
        {{ return(properties) }}
    {%- endif -%}
    {%- set rows = run_query("show tblproperties " ~ relation) -%}
    {%- for row in rows -%}
        {%- do properties.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {{ return(properties) }}
{% endmacro %}


{#-
    pre_hook of an incremental table whose changes a downstream model reads: the create sets
    the feed on (tblproperties); a table built before that gets it here, once. Its first
    change-feed version is then a SET TBLPROPERTIES, which makes every reader recompute once.
-#}
{% macro ensure_change_data_feed() %}
    {%- if execute and is_incremental() -%}
        {%- if table_properties(this).get('delta.enableChangeDataFeed') != 'true' -%}
            alter table {{ this }} set tblproperties ('delta.enableChangeDataFeed' = 'true')
        {%- endif -%}
    {%- endif -%}
{% endmacro %}


{#- post_hook of the downstream model: the upstream version this build read (no commit when
    it is the one recorded already). -#}
{% macro record_upstream_version(upstream) %}
    {%- if execute -%}
        {%- set version = run_query("describe history " ~ upstream ~ " limit 1").columns[0].values()[0] | string -%}
        {%- if table_properties(this).get(upstream_version_property(upstream)) != version -%}
            alter table {{ this }} set tblproperties ('{{ upstream_version_property(upstream) }}' = '{{ version }}')
        {%- endif -%}
    {%- endif -%}
{% endmacro %}


{#- Operations after which the change feed still holds every change of the range: a SET
    TBLPROPERTIES only of the project's own properties (record_high_water_marks), not of a
    delta.* setting, changes no row. -#}
{% macro _feed_complete_after(operation, parameters) %}
    {%- if operation in ['MERGE', 'OPTIMIZE', 'CHANGE COLUMNS', 'CHANGE COLUMN'] -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if operation == 'SET TBLPROPERTIES' -%}
        {{ return('lakehouse.' in (parameters | string) and 'delta.' not in (parameters | string)) }}
    {%- endif -%}
    {{ return(operation == 'WRITE' and '"mode":"Append"' in (parameters | string | replace(' ', ''))) }}
{% endmacro %}


{#- A VACUUM deletes the files that no version it keeps reads once they are older than its
    retention, the change-data files of versions after `since` among them. Its commits leave the
    feed complete when the first of those versions was committed less than the retention before
    the VACUUM started (`first_unread_at`): every change-data file of the range was younger. -#}
{% macro _vacuum_kept_feed(row, first_unread_at) %}
    {%- if row['operation'] == 'VACUUM END' -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if row['operation'] != 'VACUUM START' or first_unread_at is none or first_unread_at is string -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set parameters = row['operationParameters'] | string -%}
    {%- set retention = modules.re.findall('specifiedRetentionMillis[^0-9]+([0-9]+)', parameters)
        or modules.re.findall('defaultRetentionMillis[^0-9]+([0-9]+)', parameters) -%}
    {%- if not retention or row['timestamp'] is string -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(row['timestamp'] - modules.datetime.timedelta(milliseconds=retention[0] | int) < first_unread_at) }}
{% endmacro %}


{#- The newest version of `upstream` when it has a change data feed that holds every change
    after version `since` (see the top of this file), else none, with the reason in the log (as
    seen from `reader`). -#}
{% macro _feed_covers(upstream, since, reader) %}
    {%- if table_properties(upstream).get('delta.enableChangeDataFeed') != 'true' -%}
        {{ log(reader ~ ": " ~ upstream ~ " has no change data feed: every partition read", info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set history = run_query("describe history " ~ upstream) -%}
    {%- set current = history.columns['version'].values() | max -%}
    {%- if current == since -%}
        {{ return(current) }}
    {%- endif -%}
    {%- set unread = namespace(first_at=none) -%}
    {%- for row in history if row['version'] == since + 1 -%}
        {%- set unread.first_at = row['timestamp'] -%}
    {%- endfor -%}
    {%- for row in history if row['version'] > since -%}
        {%- if not _feed_complete_after(row['operation'], row['operationParameters'])
               and not _vacuum_kept_feed(row, unread.first_at) -%}
            {{ log(reader ~ ": " ~ upstream ~ " version " ~ row['version'] ~ " is a " ~ row['operation']
                   ~ ": every partition read", info=true) }}
            {{ return(none) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if current < since or history.columns['version'].values() | min > since + 1 -%}
        {{ log(reader ~ ": " ~ upstream ~ " no longer has the versions since " ~ since
               ~ " in its log: every partition read", info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {{ return(current) }}
{% endmacro %}


{% macro changed_partitions(upstream, key, partition_column, columns) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set recorded = table_properties(this).get(upstream_version_property(upstream)) -%}
    {%- if recorded is none -%}
        {{ log(this ~ ": no " ~ upstream.identifier ~ " version recorded: every partition recomputed", info=true) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set recorded = recorded | int -%}
    {%- set current = _feed_covers(upstream, recorded, this) -%}
    {%- if current is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if current == recorded -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set differs = [] -%}
    {%- for column in columns -%}
        {%- do differs.append('not (before.' ~ column ~ ' <=> after.' ~ column ~ ')') -%}
    {%- endfor -%}
    {%- set changed_query -%}
        with changes as (
            select * from table_changes('{{ upstream }}', {{ recorded + 1 }}, {{ current }})
        ),
        before as (
            select * from changes where _change_type = 'update_preimage'
        ),
        after as (
            select * from changes where _change_type = 'update_postimage'
        ),
        updated as (
            select before.{{ partition_column }} as before_partition, after.{{ partition_column }} as after_partition
            from before
            inner join after
                on before.{{ key }} = after.{{ key }}
                and before._commit_version = after._commit_version
            where {{ differs | join(' or ') }}
        )
        select cast({{ partition_column }} as string) from changes where _change_type in ('insert', 'delete')
        union
        select cast(before_partition as string) from updated
        union
        select cast(after_partition as string) from updated
    {%- endset -%}
    {{ return(run_query(changed_query).columns[0].values() | reject('none') | list | sort) }}
{% endmacro %}


{#- Date literals for a list of 'YYYY-MM-DD' strings: date'2026-03-30', date'2026-03-31' -#}
{% macro date_literals(values) -%}
    {%- set literals = [] -%}
    {%- for value in values | sort -%}
        {%- do literals.append("date'" ~ value ~ "'") -%}
    {%- endfor -%}
    {{ literals | join(', ') }}
{%- endmacro %}


{#- `<column> in (...)` for changed_partitions' answer: `true` when it is none (all of them),
    `false` when it is empty. -#}
{% macro partition_predicate(column, partitions) -%}
    {%- if partitions is none -%}
        true
    {%- elif partitions | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in ({{ date_literals(partitions) }})
    {%- endif -%}
{%- endmacro %}


{#- `where <column> in (...)` for changed_partitions' answer; nothing when it is none (all). -#}
{% macro partition_filter(column, partitions) -%}
    {%- if partitions is not none -%}
        where {{ partition_predicate(column, partitions) }}
    {%- endif -%}
{%- endmacro %}
