with

source as (
    select * from {{ source('pipeline', 'quarantine') }}
),

renamed as (
    select
        ----------  ids
        quarantine_id,
        media_id,
        run_id,

        ----------  file
        source_uri,
        file_path,
        file_size as file_size_bytes,

        ----------  what happened
        reason,
        error as error_message,
        action,

        ----------  booleans
        action = 'skipped' as is_skipped,

        ----------  timestamps
        quarantined_at

    from source
)

select * from renamed
