-- The RAI of fct_rai_intervals is the existing RAI: per site (and '(all sites)') x trend_period
-- x category x label, 100 x the events over the trap-nights of fct_population_variance's days,
-- and the two marts hold the same groups (every group with effort in the period). One rule of
-- RAI, so a second one cannot drift.
{%- set s = population_settings() %}

with

population as (
    select
        site_id,
        cast(date_trunc('{{ s.trend_period }}', captured_on) as date) as period_start,
        category,
        label,
        sum(events) as events,
        sum(coalesce(trap_nights, 0)) as trap_nights
    from {{ ref('fct_population_variance') }}
    group by all
    having sum(coalesce(trap_nights, 0)) > 0
),

intervals as (
    select * from {{ ref('fct_rai_intervals') }}
)

select
    coalesce(population.site_id, intervals.site_id) as site_id,
    coalesce(population.period_start, intervals.period_start) as period_start,
    coalesce(population.label, intervals.label) as label,
    population.events as population_events,
    intervals.events as interval_events,
    100.0 * population.events / population.trap_nights as population_rai,
    intervals.rai as interval_rai
from population
full outer join intervals
    on population.site_id = intervals.site_id
    and population.period_start = intervals.period_start
    and population.category = intervals.category
    and population.label = intervals.label
where
    population.site_id is null
    or intervals.site_id is null
    or population.events is distinct from intervals.events
    or abs(100.0 * population.events / population.trap_nights - intervals.rai)
        > 1e-9 * greatest(1.0, abs(intervals.rai))
