{#- Trend per label, per site and '(all sites)': Mann-Kendall test with Sen's slope on RAI per
    trend_period (week or month), over the periods with at least min_effort_trap_nights
    trap-nights. S = sum of sign(x_j - x_i) over i < j; Var(S) with the ties correction;
    Z = (S - 1) / sd (S > 0), (S + 1) / sd (S < 0), else 0; two-sided p from the normal
    distribution (erf by Abramowitz-Stegun 7.1.26, |error| < 1.5e-7). Sen's slope = median of
    (x_j - x_i) / (j - i), in RAI per period. direction is 'increasing' / 'decreasing' when
    p < trend_alpha and n_periods >= 4, else 'no trend'. -#}
{%- set s = population_settings() -%}

with

daily as (
    select * from {{ ref('fct_population_variance') }}
),

periods as (
    select
        site_id,
        category,
        label,
        date_trunc('{{ s.trend_period }}', captured_on) as period_start,
        {% if s.trend_period == 'month' -%}
        datediff('month', date '1970-01-01', captured_on) as period_index,
        {%- else -%}
        datediff('week', date '1970-01-05', date_trunc('week', captured_on)) as period_index,
        {%- endif %}
        sum(events) as events,
        sum(coalesce(trap_nights, 0)) as trap_nights
    from daily
    group by all
    having sum(coalesce(trap_nights, 0)) >= {{ s.min_effort_trap_nights }}
        and sum(coalesce(trap_nights, 0)) > 0
),

series as (
    select
        *,
        100.0 * events / trap_nights as rai
    from periods
),

pairs as (
    select
        earlier.site_id,
        earlier.category,
        earlier.label,
        sign(later.rai - earlier.rai) as pair_sign,
        (later.rai - earlier.rai) / (later.period_index - earlier.period_index) as pair_slope
    from series as earlier
    inner join series as later
        on earlier.site_id = later.site_id
        and earlier.category = later.category
        and earlier.label = later.label
        and earlier.period_index < later.period_index
),

ties as (
    select
        site_id,
        category,
        label,
        sum(tied * (tied - 1) * (2 * tied + 5)) as tie_term
    from (
        select site_id, category, label, count(*) as tied
        from series
        group by site_id, category, label, round(rai, 9)
    )
    group by site_id, category, label
),

per_series as (
    select
        site_id,
        category,
        label,
        count(*) as n_periods,
        min(period_start) as first_period,
        max(period_start) as last_period
    from series
    group by site_id, category, label
),

tested as (
    select
        per_series.*,
        coalesce(sum_pairs.s, 0) as mann_kendall_s,
        sum_pairs.sens_slope,
        (n_periods * (n_periods - 1) * (2 * n_periods + 5) - coalesce(ties.tie_term, 0)) / 18.0
            as var_s
    from per_series
    left join (
        select
            site_id,
            category,
            label,
            sum(pair_sign) as s,
            median(pair_slope) as sens_slope
        from pairs
        group by site_id, category, label
    ) as sum_pairs
        on per_series.site_id = sum_pairs.site_id
        and per_series.category = sum_pairs.category
        and per_series.label = sum_pairs.label
    left join ties
        on per_series.site_id = ties.site_id
        and per_series.category = ties.category
        and per_series.label = ties.label
),

z as (
    select
        *,
        case
            when var_s <= 0 then 0.0
            when mann_kendall_s > 0 then (mann_kendall_s - 1) / sqrt(var_s)
            when mann_kendall_s < 0 then (mann_kendall_s + 1) / sqrt(var_s)
            else 0.0
        end as mann_kendall_z
    from tested
),

p as (
    select
        *,
        {#- p = 2 (1 - Phi(|z|)) = 1 - erf(|z| / sqrt 2) = poly(t) exp(-x^2) -#}
        1.0 / (1.0 + 0.3275911 * abs(mann_kendall_z) / sqrt(2)) as t,
        abs(mann_kendall_z) / sqrt(2) as x
    from z
),

final as (
    select
        cast(label as varchar) as label,
        cast(category as varchar) as category,
        cast(site_id as varchar) as site_id,
        cast('{{ s.trend_period }}' as varchar) as period,
        cast(first_period as date) as first_period,
        cast(last_period as date) as last_period,
        cast(n_periods as bigint) as n_periods,
        cast(mann_kendall_s as bigint) as mann_kendall_s,
        cast(mann_kendall_z as double) as mann_kendall_z,
        cast(least(1.0, greatest(0.0,
            t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                + t * (-1.453152027 + t * 1.061405429)))) * exp(-x * x)
        )) as double) as p_value,
        cast(sens_slope as double) as sens_slope,
        cast(case
            when n_periods >= 4 and mann_kendall_s > 0 and t * (0.254829592 + t * (-0.284496736
                + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * exp(-x * x)
                < {{ s.trend_alpha }} then 'increasing'
            when n_periods >= 4 and mann_kendall_s < 0 and t * (0.254829592 + t * (-0.284496736
                + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * exp(-x * x)
                < {{ s.trend_alpha }} then 'decreasing'
            else 'no trend'
        end as varchar) as direction
    from p
)

select * from final
