-- Every event is counted once in fct_daily_population, on the day it started, and every
-- person event shows up in fct_human_activity.

with

events as (
    select
        started_on as captured_on,
        site_id,
        category,
        label,
        count(*) as events,
        max(max_count) as max_count
    from {{ ref('fct_events') }}
    group by all
),

population as (
    select * from {{ ref('fct_daily_population') }}
    where events > 0
),

human as (
    select
        captured_on,
        site_id,
        human_events
    from {{ ref('fct_human_activity') }}
    where human_events > 0
),

human_from_events as (
    select
        captured_on,
        site_id,
        sum(events) as human_events
    from events
    where category = 'person'
    group by all
),

mismatched_population as (
    select
        coalesce(events.captured_on, population.captured_on) as captured_on,
        coalesce(events.site_id, population.site_id) as site_id,
        coalesce(events.label, population.label) as label
    from events
    full outer join population
        on events.captured_on = population.captured_on
        and events.site_id = population.site_id
        and events.category = population.category
        and events.label = population.label
    where
        events.events is distinct from population.events
        or events.max_count is distinct from population.max_count
),

mismatched_human as (
    select
        coalesce(human.captured_on, human_from_events.captured_on) as captured_on,
        coalesce(human.site_id, human_from_events.site_id) as site_id,
        'person' as label
    from human
    full outer join human_from_events
        on human.captured_on = human_from_events.captured_on
        and human.site_id = human_from_events.site_id
    where human.human_events is distinct from human_from_events.human_events
)

select * from mismatched_population
union all
select * from mismatched_human
