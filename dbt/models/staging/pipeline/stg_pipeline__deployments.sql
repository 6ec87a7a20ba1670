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
        session_id,

        ----------  where
        latitude,
        longitude,
        station_x,
        station_y,
        station_crs,
        utc_offset,
        timezone,

        ----------  clock
        coalesce(clock_offset_s, 0) as clock_offset_s,

        ----------  provenance
        source_file,
        source_line,

        ----------  timestamps (camera-local)
        deployment_start,
        deployment_end,
        coalesce(start_is_date, false) as start_is_date,
        coalesce(end_is_date, false) as end_is_date,
        coalesce(problems_listed, false) as problems_listed,
        loaded_at

    from source
)

select * from renamed
