-- Weeks start on Monday (ISO 8601).

with

days as (

    {{ date_spine(var('dim_date_start'), var('dim_date_end')) }}

),

final as (

    select
        date_day,
        cast(date_format(date_day, 'yyyyMMdd') as int) as date_key,
        year(date_day) as year_number,
        quarter(date_day) as quarter_number,
        month(date_day) as month_number,
        date_format(date_day, 'MMMM') as month_name,
        cast(trunc(date_day, 'MM') as date) as month_start_date,
        cast(date_trunc('week', date_day) as date) as week_start_date,
        weekofyear(date_day) as iso_week_number,
        dayofmonth(date_day) as day_of_month,
        weekday(date_day) + 1 as day_of_week_number,
        date_format(date_day, 'EEEE') as day_name,
        weekday(date_day) >= 5 as is_weekend

    from days

)

select * from final
