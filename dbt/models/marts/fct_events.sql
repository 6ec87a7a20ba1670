{#- One row per independent event (int_events_grouped): a site x label visit. Written as the
    rows that differ from the stored ones (macros/incremental_rows.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_id',
    on_schema_change='fail',
    post_hook="{{ gone_rows_deleted('event_id', ref('int_events_grouped')) }}",
) }}

with

events as (
    select * from {{ ref('int_events_grouped') }}
)

select
    cast(event_id as varchar) as event_id,
    cast(site_id as varchar) as site_id,
    cast(camera_id as varchar) as camera_id,
    cast(deployment_id as varchar) as deployment_id,
    cast(category as varchar) as category,
    cast(label as varchar) as label,
    cast(label as varchar) as species,
    cast(is_human as boolean) as is_human,
    cast(event_started_at as timestamp) as event_started_at,
    cast(event_ended_at as timestamp) as event_ended_at,
    cast(started_on as date) as started_on,
    cast(epoch(event_ended_at) - epoch(event_started_at) as double) as duration_s,
    cast(images as bigint) as images,
    cast(cameras as bigint) as cameras,
    cast(max_count as bigint) as max_count
from events
{{ changed_rows_only() }}
