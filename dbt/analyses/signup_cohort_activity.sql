-- Question: do newer subscribers stay engaged? For each sign-up month, the share of the cohort
-- that watched something in each calendar month of the data.
-- Grain: one row per (signup month, activity month).

with

users as (

    select * from {{ ref('dim_users') }}

),

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

cohorts as (

    select
        user_id,
        cast(trunc(signup_date, 'MM') as date) as signup_month

    from users
    where is_current

),

cohort_sizes as (

    select
        signup_month,
        count(*) as cohort_users

    from cohorts
    group by signup_month

),

monthly_activity as (

    select
        cohorts.signup_month,
        cast(trunc(sessions.session_date, 'MM') as date) as activity_month,
        count(distinct sessions.user_id) as active_users

    from sessions
    inner join cohorts
        on sessions.user_id = cohorts.user_id
    group by cohorts.signup_month, cast(trunc(sessions.session_date, 'MM') as date)

),

final as (

    select
        monthly_activity.signup_month,
        monthly_activity.activity_month,
        cohort_sizes.cohort_users,
        monthly_activity.active_users,
        {{ safe_divide('monthly_activity.active_users', 'cohort_sizes.cohort_users') }} as active_share

    from monthly_activity
    inner join cohort_sizes
        on monthly_activity.signup_month = cohort_sizes.signup_month

)

select * from final
order by signup_month, activity_month
