with

source as (
    select * from {{ source('pipeline', 'media_files') }}
),

renamed as (
    select
        ----------  ids
        media_id,
        run_id,

        ----------  file
        source_uri,
        file_path,
        file_size as file_size_bytes,
        status as file_status,

        ----------  booleans
        status = 'duplicate' as is_duplicate,

        ----------  timestamps
        file_modified_at,
        seen_at

    from source
)

select * from renamed
