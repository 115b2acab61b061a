-- Cleaning: trimmed and lower-cased codes; an unknown subscription plan (defect unknown_plan:
-- platinum, family, trial) becomes 'unknown', with the source value kept and a flag.

with

source as (

    select * from {{ validated_version(source('postgres', 'users')) }}

),

renamed as (

    select
        user_id,
        lower(trim(email)) as email,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        birth_date,
        lower(trim(gender)) as gender,
        upper(trim(country)) as country_code,
        trim(city) as city,
        signup_date,
        lower(trim(subscription_plan)) as source_subscription_plan,
        lower(trim(billing_cycle)) as billing_cycle,
        cast(monthly_price as decimal(10, 2)) as monthly_price_usd,
        lower(trim(status)) as subscription_status,
        updated_at,
        _ingested_at,
        _batch_id

    from source

),

final as (

    select
        user_id,
        email,
        first_name,
        last_name,
        birth_date,
        gender,
        country_code,
        city,
        signup_date,
        case
            when source_subscription_plan in {{ sql_values(var('subscription_plans')) }} then source_subscription_plan
            else 'unknown'
        end as subscription_plan,
        source_subscription_plan,
        coalesce(source_subscription_plan not in {{ sql_values(var('subscription_plans')) }}, true) as has_unknown_plan,
        billing_cycle,
        monthly_price_usd,
        subscription_status,
        updated_at,
        _ingested_at,
        _batch_id

    from renamed

)

select * from final
