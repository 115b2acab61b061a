-- Question: do subscribers move up or down between plans? Plan changes per month, from which
-- plan to which, with the change in monthly price.
-- Grain: one row per (month, previous plan, new plan).

with

users as (

    select * from {{ ref('dim_users') }}

),

versions as (

    select
        user_id,
        changed_at,
        subscription_plan,
        monthly_price_usd,
        lag(subscription_plan) over (partition by user_id order by version_number) as previous_plan,
        lag(monthly_price_usd) over (partition by user_id order by version_number) as previous_price_usd

    from users

),

final as (

    select
        cast(trunc(changed_at, 'MM') as date) as month_start_date,
        previous_plan,
        subscription_plan as new_plan,
        count(*) as plan_changes,
        sum(monthly_price_usd - previous_price_usd) as mrr_change_usd

    from versions
    where previous_plan is not null
        and previous_plan != subscription_plan
    group by cast(trunc(changed_at, 'MM') as date), previous_plan, subscription_plan

)

select * from final
order by month_start_date asc, plan_changes desc
