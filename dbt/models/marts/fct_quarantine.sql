{#- One row per file that could not be processed cleanly, with the reason and what to do
    (error_message). action 'skipped': not processed; 'processed': kept, with a warning.
    A view, so what the current run quarantines shows at once. -#}
{{ config(materialized='view') }}

with

quarantine as (
    select * from {{ ref('stg_pipeline__quarantine') }}
),

final as (
    select
        ----------  ids
        cast(quarantine_id as varchar) as quarantine_id,
        cast(media_id as varchar) as media_id,
        cast(run_id as varchar) as run_id,

        ----------  file
        cast(source_uri as varchar) as source_uri,
        cast(file_path as varchar) as file_path,
        cast(file_size_bytes as bigint) as file_size_bytes,

        ----------  what happened
        cast(reason as varchar) as reason,
        cast(error_message as varchar) as error_message,
        cast(action as varchar) as action,

        ----------  booleans
        cast(is_skipped as boolean) as is_skipped,

        ----------  timestamps (UTC)
        cast(quarantined_at as timestamp) as quarantined_at
    from quarantine
)

select * from final
