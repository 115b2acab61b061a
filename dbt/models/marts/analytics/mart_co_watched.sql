-- Question: which titles are watched by the same people ("viewers also watched")?
-- Pairs need var co_watched_min_support common viewers and a place among the var
-- co_watched_top_n strongest partners of one of their titles: at most top_n rows per title,
-- whatever the catalogue size.
-- confidence_a_to_b is the share of A's viewers who also watched B; lift > 1 means the pair is
-- watched together more often than the titles' popularity alone explains.

with

sessions as (

    select * from {{ ref('fct_viewing_sessions') }}

),

content as (

    select * from {{ ref('dim_content') }}

),

user_titles as (

    select
        user_id,
        content_id

    from sessions
    group by user_id, content_id

),

title_viewers as (

    select
        content_id,
        count(*) as viewers

    from user_titles
    group by content_id

),

-- The pairs come from a self-join of every viewer's titles: about k * (k - 1) / 2 rows for a
-- viewer of k titles (7.5M at the small scale, 103M at medium), joined on an integer number per
-- title rather than its string id, which costs about a fifth less, and grouped on one bigint
-- per pair (pair_key), which costs about a sixth less than grouping on the two numbers
-- (measured at medium: 23 s against 28 s). Numbered in content_id order, so title_no_a <
-- title_no_b exactly when content_id_a < content_id_b.
title_numbers as (

    select
        content_id,
        cast(row_number() over (order by content_id) as bigint) as title_no

    from title_viewers

),

numbered_user_titles as (

    select
        user_titles.user_id,
        title_numbers.title_no

    from user_titles
    inner join title_numbers
        on user_titles.content_id = title_numbers.content_id

),

all_viewers as (

    select count(distinct user_id) as viewers

    from user_titles

),

pair_supports as (

    select
        {{ pair_key('title_a.title_no', 'title_b.title_no') }} as pair_key,
        count(*) as support_users

    from numbered_user_titles as title_a
    inner join numbered_user_titles as title_b
        on title_a.user_id = title_b.user_id
        and title_a.title_no < title_b.title_no
    group by pair_key
    having count(*) >= {{ var('co_watched_min_support') }}

),

numbered_pairs as (

    select
        {{ pair_key_first('pair_key') }} as title_no_a,
        {{ pair_key_second('pair_key') }} as title_no_b,
        support_users

    from pair_supports

),

pairs as (

    select
        title_a.content_id as content_id_a,
        title_b.content_id as content_id_b,
        numbered_pairs.support_users

    from numbered_pairs
    inner join title_numbers as title_a
        on numbered_pairs.title_no_a = title_a.title_no
    inner join title_numbers as title_b
        on numbered_pairs.title_no_b = title_b.title_no

),

-- Each pair once from either title's side (one read of pairs: referenced twice, Spark would
-- compute the self-join twice).
partners as (

    select
        case sides.side when 'a' then pairs.content_id_a else pairs.content_id_b end as content_id,
        case sides.side when 'a' then pairs.content_id_b else pairs.content_id_a end as partner_content_id,
        pairs.content_id_a,
        pairs.content_id_b,
        pairs.support_users

    from pairs
    cross join (values ('a'), ('b')) as sides (side)

),

ranked_partners as (

    select
        content_id_a,
        content_id_b,
        support_users,
        row_number() over (
            partition by content_id
            order by support_users desc, partner_content_id asc
        ) as partner_rank

    from partners

),

top_pairs as (

    select
        content_id_a,
        content_id_b,
        support_users

    from ranked_partners
    where partner_rank <= {{ var('co_watched_top_n') }}
    group by content_id_a, content_id_b, support_users

),

final as (

    select
        top_pairs.content_id_a,
        content_a.title as title_a,
        top_pairs.content_id_b,
        content_b.title as title_b,
        top_pairs.support_users,
        viewers_a.viewers as viewers_a,
        viewers_b.viewers as viewers_b,
        {{ safe_divide('top_pairs.support_users', 'viewers_a.viewers') }} as confidence_a_to_b,
        {{ safe_divide('top_pairs.support_users', 'viewers_b.viewers') }} as confidence_b_to_a,
        {{ safe_divide(
            'top_pairs.support_users * all_viewers.viewers',
            'viewers_a.viewers * viewers_b.viewers'
        ) }} as lift

    from top_pairs
    inner join title_viewers as viewers_a
        on top_pairs.content_id_a = viewers_a.content_id
    inner join title_viewers as viewers_b
        on top_pairs.content_id_b = viewers_b.content_id
    inner join content as content_a
        on top_pairs.content_id_a = content_a.content_id
    inner join content as content_b
        on top_pairs.content_id_b = content_b.content_id
    cross join all_viewers

)

select * from final
