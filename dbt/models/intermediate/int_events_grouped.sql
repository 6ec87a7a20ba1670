{#- Independent events (field guide 5.2) per site x category x label, from the per-image
    observations of deployed media (corrected camera-local time). A record starts a new event
    when it is at least independence_minutes after
      - the event's first record (independence_mode 'last_independent', camtrapR
        lastIndependentRecord: fixed windows), or
      - the previous record (independence_mode 'last_record': rolling).
    A gap of exactly the interval is a new event. MaxN = the most individuals of the label in
    one image of the event (not the sum over images).
    Incremental (macros/incremental_events.sql): only the series a changed record touches are
    re-folded, from the first stored event whose records differ. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}{{ events_refold_prepare() }}{% endif %}",
    post_hook="drop table if exists {{ events_refold_relation() }}",
) }}
{%- set s = population_settings() -%}

with

records as (
    {%- if is_incremental() %}
    {#- only the series to re-fold, from their re-fold start (events_refold_prepare) -#}
    select * exclude (from_us) from {{ events_refold_relation() }} where media_id is not null
    {%- else %}
    {{ event_records_sql() }}
    {%- endif %}
),

{% if s.independence_mode == 'last_record' %}
starts as (
    select distinct
        site_id,
        category,
        label,
        captured_us as started_us
    from (
        select
            site_id,
            category,
            label,
            captured_us,
            lag(captured_us) over (
                partition by site_id, category, label order by captured_us
            ) as previous_us
        from records
    )
    where previous_us is null or captured_us - previous_us >= {{ s.independence_us }}
),
{% else %}
series as (
    select
        site_id,
        category,
        label,
        list(distinct captured_us order by captured_us) as times_us
    from records
    group by site_id, category, label
),

starts as (
    {#- fold over the sorted times: a time >= the current event's start + interval opens
        the next event -#}
    select
        site_id,
        category,
        label,
        {#- each time as a one-element list, so the accumulator (the starts so far) has the
            lists' own type: the first time is the first start -#}
        unnest(list_reduce(
            list_transform(times_us, lambda t: [t]),
            lambda acc, t: case
                when t[1] - acc[-1] >= {{ s.independence_us }} then list_concat(acc, t)
                else acc
            end
        )) as started_us
    from series
),
{% endif %}

assigned as (
    select
        records.*,
        starts.started_us
    from records
    asof inner join starts
        on records.site_id = starts.site_id
        and records.category = starts.category
        and records.label = starts.label
        and records.captured_us >= starts.started_us
),

events as (
    select
        md5(concat_ws('|', site_id, category, label, cast(started_us as varchar))) as event_id,
        site_id,
        category,
        label,
        bool_or(is_human) as is_human,
        arg_min(camera_id, captured_us) as camera_id,
        arg_min(deployment_id, captured_us) as deployment_id,
        min(captured_at) as event_started_at,
        max(captured_at) as event_ended_at,
        count(distinct media_id) as images,
        count(distinct camera_id) as cameras,
        max(individuals) as max_count,
        sum(individuals) as individual_detections,
        started_us,
        bit_xor(record_hash) as event_digest,
        count(*) as record_count
    from assigned
    group by site_id, category, label, started_us
)

select
    *,
    cast(event_started_at as date) as started_on
from events
