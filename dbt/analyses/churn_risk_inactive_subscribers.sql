-- Question: which paying subscribers have gone quiet? Active users (current version) with no
-- session in the last 14 days of data, with their plan, tenure and last activity.
-- Grain: one row per such user.

with

users as (

    select * from {{ ref('dim_users') }}

),

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

data_end as (

    select max(session_date) as last_session_date

    from sessions

),

last_activity as (

    select
        user_id,
        max(session_date) as last_session_date,
        count(*) as lifetime_sessions

    from sessions
    group by user_id

),

final as (

    select
        users.user_id,
        users.subscription_plan,
        users.billing_cycle,
        users.monthly_price_usd,
        users.country_code,
        users.signup_date,
        last_activity.last_session_date,
        coalesce(last_activity.lifetime_sessions, 0) as lifetime_sessions,
        datediff(data_end.last_session_date, last_activity.last_session_date) as days_since_last_session

    from users
    cross join data_end
    left join last_activity
        on users.user_id = last_activity.user_id
    where users.is_current
        and users.subscription_status = 'active'
        and (
            last_activity.last_session_date is null
            or last_activity.last_session_date < date_sub(data_end.last_session_date, 14)
        )

)

select * from final
order by monthly_price_usd desc, days_since_last_session desc
