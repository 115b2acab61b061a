-- Business rule: the genre weights of every title sum to 1, so spreading a title's measure
-- over its genres neither loses nor double counts anything. Returns the titles that break it.

with

bridge as (

    select * from {{ ref('bridge_content_genre') }}

),

totals as (

    select
        content_sk,
        sum(weighting_factor) as total_weight

    from bridge
    group by content_sk

)

select * from totals
where abs(total_weight - 1.0) > 1e-9
