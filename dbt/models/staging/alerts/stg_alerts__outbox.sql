{#- The outbox without what may carry a URL or a secret: the message body (markdown, with the
    dashboard link), the thumbnail (bytes) and, in every free-text column, anything shaped like
    a URL (`scheme://...`, which is also how a redacted target is named) becomes '<url>'. -#}
{%- set url_to_placeholder = "'[A-Za-z][A-Za-z0-9+.-]*://[^\\s,;)]*', '<url>', 'g'" -%}

with

source as (
    select * from {{ source('alerts', 'outbox') }}
),

renamed as (
    select
        ----------  ids
        alert_id,
        anchor_id as anchor_alert_id,
        run_id,
        site_id,
        camera_id,
        media_id,

        ----------  the rule and the message
        regexp_replace(rule_name, {{ url_to_placeholder }}) as rule_name,
        rule_kind,
        kind as alert_kind,
        regexp_replace(title, {{ url_to_placeholder }}) as title,
        media_count,
        regexp_replace(channels, {{ url_to_placeholder }}) as channels,

        ----------  delivery
        status as alert_status,
        attempts,
        regexp_replace(last_error, {{ url_to_placeholder }}) as last_error,

        ----------  booleans
        status = 'sent' as is_sent,

        ----------  timestamps (event_*: camera-local; the rest UTC)
        event_at,
        event_until,
        created_at,
        next_attempt_at,
        sent_at

    from source
)

select * from renamed
