-- Question: when do people watch, and on which devices: hour of day by day of week?
-- Hours and days are UTC (the platform's reference time zone). avg_sessions_per_day divides by
-- the number of such weekdays in the data, so a Friday 21:00 reads as "sessions in a typical
-- Friday's 21:00 hour". Built from the daily hours of mart_hourly_activity (incremental), not
-- from the fact: a day's run reads a few thousand rows instead of every session. Counts and
-- second totals add up exactly over days, so the result is the same.

with

hourly as (

    select * from {{ ref('mart_hourly_activity') }}

),

dates as (

    select * from {{ ref('dim_date') }}

),

joined as (

    select
        dates.day_of_week_number,
        dates.day_name,
        hourly.activity_date,
        hourly.started_hour,
        hourly.device_type,
        hourly.sessions,
        hourly.watch_seconds

    from hourly
    inner join dates
        on hourly.activity_date = dates.date_day

),

weekday_counts as (

    select
        day_of_week_number,
        count(distinct activity_date) as days_in_data

    from joined
    group by day_of_week_number

),

aggregated as (

    select
        day_of_week_number,
        day_name,
        started_hour,
        device_type,
        grouping(device_type) as is_all_devices,
        sum(sessions) as sessions,
        sum(watch_seconds) as watch_seconds

    from joined
    group by grouping sets (
        (day_of_week_number, day_name, started_hour),
        (day_of_week_number, day_name, started_hour, device_type)
    )

),

final as (

    select
        aggregated.day_of_week_number,
        aggregated.day_name,
        aggregated.started_hour,
        case when aggregated.is_all_devices = 1 then 'all' else aggregated.device_type end as device_type,
        aggregated.sessions,
        {{ seconds_to_hours('aggregated.watch_seconds') }} as watch_hours,
        {{ seconds_to_minutes('aggregated.watch_seconds') }} / aggregated.sessions as avg_session_minutes,
        {{ safe_divide('aggregated.sessions', 'weekday_counts.days_in_data') }} as avg_sessions_per_day,
        {{ safe_divide(
            'aggregated.sessions',
            'sum(aggregated.sessions) over (partition by aggregated.is_all_devices, aggregated.device_type)'
        ) }} as share_of_device_sessions

    from aggregated
    inner join weekday_counts
        on aggregated.day_of_week_number = weekday_counts.day_of_week_number

)

select * from final
