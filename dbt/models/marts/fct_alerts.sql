{#- The alert outbox for display, one row per alert: what fired, where, and how its delivery
    went. A view, so an alert queued or delivered after the build shows at once. Built on
    stg_alerts__outbox, which leaves out the body and thumbnail and replaces anything shaped
    like a URL in its free text by '<url>': no column here can carry a target URL or a token. -#}
{{ config(materialized='view') }}

with

outbox as (
    select * from {{ ref('stg_alerts__outbox') }}
),

deliveries as (
    select
        alert_id,
        count(*) as targets_delivered
    from {{ ref('stg_alerts__deliveries') }}
    group by alert_id
),

final as (
    select
        ----------  ids
        cast(outbox.alert_id as varchar) as alert_id,
        cast(outbox.anchor_alert_id as varchar) as anchor_alert_id,
        cast(outbox.run_id as varchar) as run_id,
        cast(outbox.site_id as varchar) as site_id,
        cast(outbox.camera_id as varchar) as camera_id,
        cast(outbox.media_id as varchar) as media_id,

        ----------  the rule and the message
        cast(outbox.rule_name as varchar) as rule_name,
        cast(outbox.rule_kind as varchar) as rule_kind,
        cast(outbox.alert_kind as varchar) as alert_kind,
        cast(outbox.title as varchar) as title,
        cast(outbox.media_count as integer) as media_count,
        cast(outbox.channels as varchar) as channels,

        ----------  delivery
        cast(outbox.alert_status as varchar) as alert_status,
        cast(outbox.attempts as integer) as attempts,
        cast(coalesce(deliveries.targets_delivered, 0) as bigint) as targets_delivered,
        cast(outbox.last_error as varchar) as last_error,

        ----------  booleans
        cast(outbox.is_sent as boolean) as is_delivered,

        ----------  timestamps (event_*: camera-local; the rest UTC)
        cast(outbox.event_at as timestamp) as event_at,
        cast(outbox.event_until as timestamp) as event_until,
        cast(outbox.created_at as timestamp) as created_at,
        cast(outbox.next_attempt_at as timestamp) as next_attempt_at,
        cast(outbox.sent_at as timestamp) as delivered_at
    from outbox
    left join deliveries
        on outbox.alert_id = deliveries.alert_id
)

select * from final
