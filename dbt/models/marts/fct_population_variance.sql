{#- Effort-weighted rolling statistics of daily RAI per label, per site and across all sites
    (site_id '(all sites)': events and trap-nights summed over sites). Weights = trap-nights,
    so the rolling mean is 100 x events / trap-nights over the window. Windows are calendar
    windows ending on captured_on (7 and 30 days). A window with fewer than
    min_effort_trap_nights trap-nights gets null statistics (is_low_effort for the 7-day one).
    z_score = (rolling_mean_7d - baseline mean) / baseline sd, where the baseline is the 30 days
    before the 7-day window (days t-36 .. t-7), weighted the same way; null when the baseline is
    below the effort floor or has no variance. -#}
{%- set s = population_settings() -%}
{%- set floor = s.min_effort_trap_nights -%}

with

population as (
    select * from {{ ref('fct_daily_population') }}
),

effort as (
    select * from {{ ref('int_effort_aggregated_to_site_day') }}
),

per_site as (
    select
        captured_on,
        site_id,
        category,
        label,
        events,
        trap_nights
    from population
),

all_sites_effort as (
    select
        operation_on as captured_on,
        sum(trap_nights) as trap_nights
    from effort
    group by operation_on
),

all_sites_events as (
    select
        captured_on,
        category,
        label,
        sum(events) as events
    from population
    group by captured_on, category, label
),

labels as (
    select distinct category, label from population
),

all_sites as (
    select
        all_sites_effort.captured_on,
        '(all sites)' as site_id,
        labels.category,
        labels.label,
        coalesce(all_sites_events.events, 0) as events,
        all_sites_effort.trap_nights
    from all_sites_effort
    cross join labels
    left join all_sites_events
        on all_sites_effort.captured_on = all_sites_events.captured_on
        and labels.category = all_sites_events.category
        and labels.label = all_sites_events.label
),

daily as (
    select
        *,
        coalesce(trap_nights, 0) as w,
        case when trap_nights > 0 then 100.0 * events else 0 end as wx,
        case when trap_nights > 0 then 10000.0 * events * events / trap_nights else 0 end as wxx
    from (select * from per_site union all select * from all_sites)
),

windowed as (
    select
        *,
        {%- for name, frame in [
            ('7d', 'interval 6 days preceding and current row'),
            ('30d', 'interval 29 days preceding and current row'),
            ('base', 'interval 36 days preceding and interval 7 days preceding'),
        ] %}
        sum(w) over (partition by site_id, category, label order by captured_on
            range between {{ frame }}) as w_{{ name }},
        sum(wx) over (partition by site_id, category, label order by captured_on
            range between {{ frame }}) as wx_{{ name }},
        sum(wxx) over (partition by site_id, category, label order by captured_on
            range between {{ frame }}) as wxx_{{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from daily
),

stats as (
    select
        *,
        {%- for name in ['7d', '30d', 'base'] %}
        case when w_{{ name }} >= {{ floor }} and w_{{ name }} > 0
            then wx_{{ name }} / w_{{ name }} end as mean_{{ name }},
        case when w_{{ name }} >= {{ floor }} and w_{{ name }} > 0
            then greatest(
                wxx_{{ name }} / w_{{ name }} - (wx_{{ name }} / w_{{ name }}) ^ 2, 0
            ) end as var_{{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from windowed
),

final as (
    select
        cast(captured_on as date) as captured_on,
        cast(site_id as varchar) as site_id,
        cast(category as varchar) as category,
        cast(label as varchar) as label,
        cast(events as bigint) as events,
        cast(trap_nights as double) as trap_nights,
        cast(case when trap_nights > 0 then 100.0 * events / trap_nights end as double) as rai,
        cast(w_7d as double) as trap_nights_7d,
        cast(mean_7d as double) as rolling_mean_7d,
        cast(var_7d as double) as rolling_var_7d,
        cast(case when mean_7d > 0 then sqrt(var_7d) / mean_7d end as double) as rolling_cv_7d,
        cast(w_30d as double) as trap_nights_30d,
        cast(mean_30d as double) as rolling_mean_30d,
        cast(var_30d as double) as rolling_var_30d,
        cast(case when mean_30d > 0 then sqrt(var_30d) / mean_30d end as double)
            as rolling_cv_30d,
        cast(mean_base as double) as baseline_mean,
        cast(sqrt(var_base) as double) as baseline_sd,
        cast(case when var_base > 0 and mean_7d is not null
            then (mean_7d - mean_base) / sqrt(var_base) end as double) as z_score,
        cast(coalesce(w_7d, 0) < {{ floor }} or coalesce(w_7d, 0) = 0 as boolean)
            as is_low_effort
    from stats
)

select * from final
