{#- RAI per site (and '(all sites)') x trend_period x category x label with its percentile
    bootstrap interval, standard error and between-deployment variance (int_rai_bootstrapped:
    definitions there and in docs/marts.md "RAI intervals"). One row per group with effort in
    the period; rai = 100 x events / trap_nights over the period, the same as summing
    fct_population_variance's days (dbt/data-tests/assert_rai_intervals_match_population.sql). -#}
{%- set s = population_settings() -%}

with

intervals as (
    select * from {{ ref('int_rai_bootstrapped') }}
)

select
    cast(site_id as varchar) as site_id,
    cast('{{ s.trend_period }}' as varchar) as period,
    cast(period_key as date) as period_start,
    cast(category as varchar) as category,
    cast(label as varchar) as label,
    cast(events as bigint) as events,
    cast(trap_nights as double) as trap_nights,
    cast(rai as double) as rai,
    cast(rai_lower as double) as rai_lower,
    cast(rai_upper as double) as rai_upper,
    cast(rai_se as double) as rai_se,
    cast(n_units as bigint) as n_units,
    cast(between_deployment_variance as double) as between_deployment_variance,
    cast(n_deployments as bigint) as n_deployments,
    cast(confidence_level as double) as confidence_level,
    cast(replicates as bigint) as replicates,
    cast(seed as bigint) as seed,
    cast(unit as varchar) as unit,
    cast(trap_nights < {{ s.min_effort_trap_nights }} as boolean) as is_low_effort
from intervals
