-- Question: how do the plan mix, churn, reactivation and monthly recurring revenue evolve?
-- Stock measures (subscribers, MRR) are the state at the end of the month, read from the
-- dim_users version valid at that instant. Flow measures count version changes in the month:
-- churned = a version whose status turns to churned; reactivated = churned or paused turning
-- active; both under the plan of the new version. For a user's first version the change time is
-- the source's updated_at, which is when the latest change happened (for example a churn before
-- the first extract). History before the first snapshot is otherwise unknown: months before it
-- show every user in their first known state (a user who churned in January counts as churned
-- in December too).

with

users as (

    select * from {{ ref('dim_users') }}

),

dates as (

    select * from {{ ref('dim_date') }}

),

bounds as (

    select
        cast(trunc(min(signup_date), 'MM') as date) as first_month_start_date,
        greatest(max(cast(changed_at as date)), max(signup_date)) as last_day

    from users

),

months as (

    select
        dates.month_start_date,
        add_months(dates.month_start_date, 1) as next_month_start_date

    from dates
    cross join bounds
    where dates.date_day = dates.month_start_date
        and dates.date_day >= bounds.first_month_start_date
        and dates.date_day <= bounds.last_day

),

plans as (

    select subscription_plan

    from users
    group by subscription_plan

),

month_end_states as (

    select
        months.month_start_date,
        users.subscription_plan,
        users.subscription_status,
        users.monthly_price_usd

    from months
    inner join users
        on users.valid_from < cast(months.next_month_start_date as timestamp)
        and users.valid_to >= cast(months.next_month_start_date as timestamp)
        and users.signup_date < months.next_month_start_date

),

stocks as (

    select
        month_start_date,
        subscription_plan,
        sum(case when subscription_status = 'active' then 1 else 0 end) as active_subscribers,
        sum(case when subscription_status = 'paused' then 1 else 0 end) as paused_subscribers,
        sum(case when subscription_status = 'active' then monthly_price_usd else 0 end) as mrr_usd

    from month_end_states
    group by month_start_date, subscription_plan

),

transitions as (

    select
        cast(trunc(changed_at, 'MM') as date) as month_start_date,
        subscription_plan,
        subscription_status,
        lag(subscription_status) over (partition by user_id order by version_number) as previous_status

    from users

),

flows as (

    select
        month_start_date,
        subscription_plan,
        sum(
            case when subscription_status = 'churned' and coalesce(previous_status, '') != 'churned' then 1 else 0 end
        ) as churned_subscribers,
        sum(
            case when subscription_status = 'active' and previous_status in ('churned', 'paused') then 1 else 0 end
        ) as reactivated_subscribers

    from transitions
    group by month_start_date, subscription_plan

),

signups as (

    select
        cast(trunc(signup_date, 'MM') as date) as month_start_date,
        subscription_plan,
        count(*) as new_subscribers

    from users
    where version_number = 1
    group by cast(trunc(signup_date, 'MM') as date), subscription_plan

),

grid as (

    select
        months.month_start_date,
        plans.subscription_plan

    from months
    cross join plans

),

final as (

    select
        grid.month_start_date,
        grid.subscription_plan,
        coalesce(stocks.active_subscribers, 0) as active_subscribers,
        coalesce(stocks.paused_subscribers, 0) as paused_subscribers,
        cast(coalesce(stocks.mrr_usd, 0) as decimal(18, 2)) as mrr_usd,
        {{ safe_divide(
            'coalesce(stocks.active_subscribers, 0)',
            'sum(coalesce(stocks.active_subscribers, 0)) over (partition by grid.month_start_date)'
        ) }} as share_of_active_subscribers,
        coalesce(signups.new_subscribers, 0) as new_subscribers,
        coalesce(flows.churned_subscribers, 0) as churned_subscribers,
        coalesce(flows.reactivated_subscribers, 0) as reactivated_subscribers

    from grid
    left join stocks
        on grid.month_start_date = stocks.month_start_date
        and grid.subscription_plan = stocks.subscription_plan
    left join flows
        on grid.month_start_date = flows.month_start_date
        and grid.subscription_plan = flows.subscription_plan
    left join signups
        on grid.month_start_date = signups.month_start_date
        and grid.subscription_plan = signups.subscription_plan

)

select * from final
