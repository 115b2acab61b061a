-- Validity is the half-open interval [valid_from, valid_to): the first version of a user is
-- valid from 1900-01-01 (the source holds no earlier history, so the first state we saw is
-- assumed since sign-up), the current one until 9999-12-31. Descriptive attributes that are not
-- tracked (name, e-mail, city, birth date) are type 1: the current value on every version.

with

snapshot as (

    select * from {{ ref('snap_users') }}

),

users as (

    select * from {{ ref('stg_postgres__users') }}

),

versions as (

    select
        snapshot.user_id,
        snapshot.subscription_plan,
        snapshot.billing_cycle,
        snapshot.monthly_price_usd,
        snapshot.subscription_status,
        snapshot.country_code,
        snapshot.dbt_valid_from as changed_at,
        snapshot.dbt_valid_to,
        row_number() over (partition by snapshot.user_id order by snapshot.dbt_valid_from) as version_number

    from snapshot

),

final as (

    select
        {{ surrogate_key(['versions.user_id', 'versions.changed_at']) }} as user_sk,
        versions.user_id,
        versions.version_number,
        case when versions.version_number = 1 then {{ first_valid_from() }} else versions.changed_at end as valid_from,
        coalesce(versions.dbt_valid_to, {{ open_valid_to() }}) as valid_to,
        versions.dbt_valid_to is null as is_current,
        versions.changed_at,
        versions.subscription_plan,
        versions.billing_cycle,
        versions.monthly_price_usd,
        versions.subscription_status,
        versions.country_code,
        users.email,
        users.first_name,
        users.last_name,
        users.gender,
        users.birth_date,
        users.city,
        users.signup_date

    from versions
    left join users
        on versions.user_id = users.user_id

)

select * from final
