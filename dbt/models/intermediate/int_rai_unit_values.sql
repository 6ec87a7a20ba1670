{#- The units of int_rai_units counted per group (site x trend_period x category x label),
    deployment and value (events, trap_nights): what the bootstrap draws from (camera-days
    repeat few values), one scan of the units view. group_digest says what a group's interval
    is computed from: a hash of its rows and the bootstrap vars, so int_rai_bootstrapped
    (incremental by group) draws again only the groups whose digest changed. -#}
{{ config(materialized='table') }}
{%- set r = rai_interval_settings() -%}

with

units as (
    select * from {{ ref('int_rai_units') }}
),

counted as (
    select
        site_id,
        cast(period_start as varchar) as period_key,
        category,
        label,
        deployment_id,
        events,
        trap_nights,
        count(*) as units
    from units
    group by site_id, period_key, category, label, deployment_id, events, trap_nights
),

final as (
    select
        *,
        hash(concat_ws(
            '|', '{{ r.confidence_level }}', '{{ r.bootstrap_replicates }}',
            '{{ r.bootstrap_seed }}', '{{ r.bootstrap_unit }}',
            cast({{ rows_digest(
                "deployment_id", "cast(events as varchar)", "cast(trap_nights as varchar)",
                "cast(units as varchar)"
            ) }} over by_group as varchar),
            cast(count(*) over by_group as varchar)
        )) as group_digest
    from counted
    window by_group as (partition by site_id, period_key, category, label)
)

select * from final
