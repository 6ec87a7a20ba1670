{#- The units the RAI bootstrap resamples (int_rai_bootstrapped), per site x trend_period x
    category x label, and for '(all sites)' (every site's units together):

    - bootstrap_unit 'camera_day': one row per deployment-day with effort
      (int_camera_operation_daily: fractional trap-nights; a deployment is one camera, or a
      whole station when its table has no camera column) for every label ever seen at the site,
      with the independent events of the label that started in that deployment that day (an
      event belongs to its first record's deployment, int_events_grouped); days without a
      sighting are units with 0 events, so zeros count. Keyed by deployment, not camera: a
      station-wide deployment's effort row is camera '*', its photos' cameras are real. A camera-day with events but no effort (events during a problem period) is a unit
      with effort 0, so the events still count.
    - bootstrap_unit 'deployment': the same rows summed per deployment within the period.

    Summed over a group's units, events and trap_nights are the group's own, so 100 x events /
    trap_nights is the RAI of fct_daily_population over the period (a singular test pins it). -#}
{%- set s = population_settings() -%}
{%- set r = rai_interval_settings() -%}

with

operation as (
    select * from {{ ref('int_camera_operation_daily') }}
    where effort > 0
),

events as (
    select * from {{ ref('int_events_grouped') }}
),

labels_per_site as (
    select distinct site_id, category, label from events
),

labels_anywhere as (
    select distinct category, label from events
),

event_days as (
    select
        site_id,
        deployment_id,
        started_on as unit_on,
        category,
        label,
        count(*) as events
    from events
    where deployment_id is not null
    group by site_id, deployment_id, started_on, category, label
),

camera_days as (
    select
        site_id,
        operation_on as unit_on,
        deployment_id,
        sum(effort) as effort
    from operation
    group by site_id, operation_on, deployment_id
),

{% for name, labels, on in [
    ('per_site', 'labels_per_site',
        'inner join labels_per_site on camera_days.site_id = labels_per_site.site_id'),
    ('all_sites', 'labels_anywhere', 'cross join labels_anywhere'),
] %}
{{ name }} as (
    {#- per_site: the site's camera-days x the labels seen at the site; all_sites: every
        site's camera-days x every label seen anywhere (fct_population_variance's
        '(all sites)' sums every site's effort for every label) -#}
    select
        coalesce(labelled.site_id, event_days.site_id) as site_id,
        coalesce(labelled.unit_on, event_days.unit_on) as unit_on,
        coalesce(labelled.category, event_days.category) as category,
        coalesce(labelled.label, event_days.label) as label,
        coalesce(labelled.deployment_id, event_days.deployment_id) as deployment_id,
        coalesce(event_days.events, 0) as events,
        coalesce(labelled.effort, 0.0) as trap_nights
    from (
        select camera_days.*, {{ labels }}.category, {{ labels }}.label
        from camera_days
        {{ on }}
    ) as labelled
    full outer join event_days
        on labelled.site_id = event_days.site_id
        and labelled.deployment_id = event_days.deployment_id
        and labelled.unit_on = event_days.unit_on
        and labelled.category = event_days.category
        and labelled.label = event_days.label
),
{% endfor %}

camera_day_units as (
    select
        site_id as group_site_id,
        *
    from per_site

    union all

    select
        '(all sites)' as group_site_id,
        *
    from all_sites
),

placed as (
    select
        group_site_id as site_id,
        cast(date_trunc('{{ s.trend_period }}', unit_on) as date) as period_start,
        category,
        label,
        concat_ws('/', site_id, deployment_id, cast(unit_on as varchar)) as unit_id,
        deployment_id,
        events,
        trap_nights
    from camera_day_units
)

{% if r.bootstrap_unit == 'deployment' %}
select
    site_id,
    period_start,
    category,
    label,
    deployment_id as unit_id,
    deployment_id,
    cast(sum(events) as bigint) as events,
    cast(sum(trap_nights) as double) as trap_nights
from placed
group by site_id, period_start, category, label, deployment_id
{% else %}
select
    site_id,
    period_start,
    category,
    label,
    unit_id,
    deployment_id,
    cast(events as bigint) as events,
    cast(trap_nights as double) as trap_nights
from placed
{% endif %}
