with

sessions as (

    select * from {{ ref('stg_postgres__viewing_sessions') }}

),

profiles as (

    select
        device_type,
        os_name

    from sessions
    group by device_type, os_name

),

final as (

    select
        {{ surrogate_key(['device_type', 'os_name']) }} as device_sk,
        device_type,
        os_name,
        case
            when device_type in ('tv', 'console') then 'living room'
            when device_type in ('mobile', 'tablet') then 'handheld'
            when device_type = 'desktop' then 'desktop'
            else 'unknown'
        end as device_class,
        device_type in ('mobile', 'tablet') as is_handheld

    from profiles

)

select * from final
