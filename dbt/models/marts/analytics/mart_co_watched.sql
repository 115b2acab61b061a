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

all_viewers as (

    select count(distinct user_id) as viewers

    from user_titles

),

pairs as (

    select
        title_a.content_id as content_id_a,
        title_b.content_id as content_id_b,
        count(*) as support_users

    from user_titles as title_a
    inner join user_titles as title_b
        on title_a.user_id = title_b.user_id
        and title_a.content_id < title_b.content_id
    group by title_a.content_id, title_b.content_id
    having count(*) >= {{ var('co_watched_min_support') }}

),

partners as (

    select
        content_id_a as content_id,
        content_id_b as partner_content_id,
        support_users

    from pairs

    union all

    select
        content_id_b as content_id,
        content_id_a as partner_content_id,
        support_users

    from pairs

),

ranked_partners as (

    select
        content_id,
        partner_content_id,
        row_number() over (
            partition by content_id
            order by support_users desc, partner_content_id asc
        ) as partner_rank

    from partners

),

top_pairs as (

    select
        least(content_id, partner_content_id) as content_id_a,
        greatest(content_id, partner_content_id) as content_id_b

    from ranked_partners
    where partner_rank <= {{ var('co_watched_top_n') }}
    group by least(content_id, partner_content_id), greatest(content_id, partner_content_id)

),

final as (

    select
        pairs.content_id_a,
        content_a.title as title_a,
        pairs.content_id_b,
        content_b.title as title_b,
        pairs.support_users,
        viewers_a.viewers as viewers_a,
        viewers_b.viewers as viewers_b,
        {{ safe_divide('pairs.support_users', 'viewers_a.viewers') }} as confidence_a_to_b,
        {{ safe_divide('pairs.support_users', 'viewers_b.viewers') }} as confidence_b_to_a,
        {{ safe_divide(
            'pairs.support_users * all_viewers.viewers',
            'viewers_a.viewers * viewers_b.viewers'
        ) }} as lift

    from pairs
    inner join top_pairs
        on pairs.content_id_a = top_pairs.content_id_a
        and pairs.content_id_b = top_pairs.content_id_b
    inner join title_viewers as viewers_a
        on pairs.content_id_a = viewers_a.content_id
    inner join title_viewers as viewers_b
        on pairs.content_id_b = viewers_b.content_id
    inner join content as content_a
        on pairs.content_id_a = content_a.content_id
    inner join content as content_b
        on pairs.content_id_b = content_b.content_id
    cross join all_viewers

)

select * from final
