with

source as (
    select * from {{ source('pipeline', 'deployments') }}
),

renamed as (
    select
        ----------  ids
        deployment_id,
        site_id,
        camera_id,

        ----------  where
        latitude,
        longitude,
        utc_offset,

        ----------  clock
        coalesce(clock_offset_s, 0) as clock_offset_s,

        ----------  provenance
        source_file,
        source_line,

        ----------  timestamps (camera-local)
        deployment_start,
        deployment_end,
        loaded_at

    from source
)

select * from renamed
