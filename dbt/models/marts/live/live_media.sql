{#- One row per media file (every file of stg_pipeline__media) with where and when it was
    taken as the marts place it, as of now: the deployment int_media_deployed puts it in (same
    site and camera, captured_at within the deployment), that deployment's clock offset added,
    and a place to show on a map. A VIEW: current between builds, like the boxes (alerts read
    it right after a batch is loaded).

    place_*: the coordinates of the deployment (deployments.csv) when it has them, else the
    image's own GPS unless it is a placeholder (int_media_located: (0, 0), which some cameras
    write without a fix, or one fake value written at several sites) and never (0, 0). Inferred
    deployments (no row in deployments.csv) give no coordinates of their own here: their
    location is the mean of their images' GPS, and the image's own fix is closer. -#}
{{ config(materialized='view') }}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

placed as (
    select * from {{ ref('int_media_deployed') }}
),

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

gps as (
    select media_id, latitude as gps_latitude, longitude as gps_longitude
    from {{ ref('int_media_located') }}
),

located as (
    select
        media.*,
        placed.deployment_id,
        coalesce(
            placed.captured_at, media.captured_at, media.file_modified_at, media.ingested_at
        ) as taken_at,
        case
            when not deployments.is_inferred
                and deployments.latitude is not null and deployments.longitude is not null
                and not (deployments.latitude = 0 and deployments.longitude = 0)
                then 'deployment'
            when gps.gps_latitude is not null and gps.gps_longitude is not null
                then 'image GPS'
        end as place_source,
        deployments.latitude as deployment_latitude,
        deployments.longitude as deployment_longitude,
        gps.gps_latitude,
        gps.gps_longitude
    from media
    left join placed
        on media.media_id = placed.media_id
    left join deployments
        on placed.deployment_id = deployments.deployment_id
    left join gps
        on media.media_id = gps.media_id
),

final as (
    select
        ----------  ids
        cast(media_id as varchar) as media_id,
        cast(site_id as varchar) as site_id,
        cast(camera_id as varchar) as camera_id,
        cast(deployment_id as varchar) as deployment_id,
        cast(run_id as varchar) as run_id,

        ----------  file
        cast(source_uri as varchar) as source_uri,
        cast(file_path as varchar) as file_path,
        cast(file_name as varchar) as file_name,
        cast(media_type as varchar) as media_type,

        ----------  place
        cast(place_source as varchar) as place_source,
        cast(case place_source
            when 'deployment' then deployment_latitude
            when 'image GPS' then gps_latitude
        end as double) as place_latitude,
        cast(case place_source
            when 'deployment' then deployment_longitude
            when 'image GPS' then gps_longitude
        end as double) as place_longitude,

        ----------  timestamps (camera-local): the deployment's clock offset added where the
        ----------  file is placed in one, else as recorded, else the file's own times
        cast(taken_at as timestamp) as captured_at,
        cast(taken_at as date) as captured_on
    from located
)

select * from final
