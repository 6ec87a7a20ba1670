{#- The GPS fixes that are not places, reported (int_media_located decides): one row per site,
    camera and placeholder value, with how many photos wrote it. reason 'zero' = (0, 0), what
    Moultrie and other cameras write without a fix; 'shared' = one value (to 5 decimals, about
    1 m) written at more than one site, a fixed fake some cameras write. These photos are placed
    by their deployment's coordinates (station table) or not at all: never on the map at the
    placeholder. -#}

with

located as (
    select * from {{ ref('int_media_located') }}
    where is_gps_placeholder
),

final as (
    select
        cast(site_id as varchar) as site_id,
        cast(camera_id as varchar) as camera_id,
        cast(gps_placeholder_reason as varchar) as reason,
        cast(gps_latitude as double) as latitude,
        cast(gps_longitude as double) as longitude,
        cast(count(*) as bigint) as photos,
        cast(min(camera_captured_at) as timestamp) as first_captured_at,
        cast(max(camera_captured_at) as timestamp) as last_captured_at
    from located
    group by all
)

select * from final
