-- Business rule: the versions of a user cover time without gaps or overlaps: each version ends
-- where the next one starts, the first starts at 1900-01-01, and exactly the last one is
-- current and open-ended. Returns the versions that break it.

with

users as (

    select * from {{ ref('dim_users') }}

),

ordered as (

    select
        user_id,
        version_number,
        valid_from,
        valid_to,
        is_current,
        lead(valid_from) over (partition by user_id order by version_number) as next_valid_from

    from users

),

violations as (

    select *

    from ordered
    where (version_number = 1 and valid_from != {{ first_valid_from() }})
        or (next_valid_from is not null and (valid_to != next_valid_from or is_current))
        or (next_valid_from is null and (valid_to != {{ open_valid_to() }} or not is_current))
        or valid_from >= valid_to

)

select * from violations
