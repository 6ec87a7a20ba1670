{#- Which targets took which alert. target_name (a redacted URL) is left out on purpose:
    target_key (sha256 of the URL, 16 hex) says which target without naming it. -#}
with

source as (
    select * from {{ source('alerts', 'deliveries') }}
),

renamed as (
    select
        ----------  ids
        alert_id,
        target_key,

        ----------  timestamps (UTC)
        delivered_at

    from source
)

select * from renamed
