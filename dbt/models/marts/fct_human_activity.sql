{#- People per site and day (field guide 5.10): human events (independent events of label
    'person': person-detector boxes or person-cue boxes, one per image), human images, effort
    and the human activity index = human events per 100 trap-nights (null without effort). -#}

with

population as (
    select * from {{ ref('fct_daily_population') }}
    where category = 'person'
),

effort as (
    select * from {{ ref('int_effort_aggregated_to_site_day') }}
),

people as (
    select
        captured_on,
        site_id,
        sum(events) as human_events,
        sum(images) as human_images,
        max(max_count) as max_people
    from population
    group by captured_on, site_id
),

spine as (
    select operation_on as captured_on, site_id from effort
    union
    select captured_on, site_id from people
)

select
    cast(spine.captured_on as date) as captured_on,
    cast(spine.site_id as varchar) as site_id,
    cast(coalesce(people.human_events, 0) as bigint) as human_events,
    cast(coalesce(people.human_images, 0) as bigint) as human_images,
    cast(coalesce(people.max_people, 0) as bigint) as max_people,
    cast(effort.trap_nights as double) as trap_nights,
    cast(100.0 * coalesce(people.human_events, 0) / effort.trap_nights as double)
        as human_activity_index
from spine
left join people
    on spine.captured_on = people.captured_on
    and spine.site_id = people.site_id
left join effort
    on spine.captured_on = effort.operation_on
    and spine.site_id = effort.site_id
