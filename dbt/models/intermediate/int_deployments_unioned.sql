{#- Every deployment: the rows of the station table (a camtrapR CTtable or deployments.csv),
    plus one inferred deployment per site x camera that has none there (first to last image;
    location = the mean EXIF GPS that is not a placeholder). camera_id '*' = every camera of the
    station (a CTtable without a camera column).

    Effort window (camtrapR >= 2.1 cameraOperation): a setup or retrieval given as a date alone
    is at 12:00 that day (half a day of effort); a date-time is exact. An inferred deployment
    counts whole days from its first to its last image day. -#}

with

listed as (
    select * from {{ ref('stg_pipeline__deployments') }}
),

media as (
    select * from {{ ref('int_media_located') }}
    where captured_at is not null
),

inferred as (
    select
        media.site_id || '/' || media.camera_id as deployment_id,
        media.site_id,
        media.camera_id,
        cast(null as varchar) as session_id,
        min(media.captured_at) as deployment_start,
        max(media.captured_at) as deployment_end,
        cast(min(media.captured_at) as date) + interval 0 hour as effort_start,
        cast(max(media.captured_at) as date) + interval 1 day as effort_end,
        avg(media.latitude) filter (where not media.is_gps_placeholder) as latitude,
        avg(media.longitude) filter (where not media.is_gps_placeholder) as longitude,
        mode(media.utc_offset) as utc_offset,
        cast(null as varchar) as timezone,
        cast(0 as double) as clock_offset_s,
        false as problems_listed,
        true as is_inferred
    from media
    where not exists (
        select 1 from listed
        where
            media.site_id = listed.site_id
            and (listed.camera_id = media.camera_id or listed.camera_id = '*')
    )
    group by media.site_id, media.camera_id
),

unioned as (
    select
        deployment_id,
        site_id,
        camera_id,
        session_id,
        deployment_start,
        deployment_end,
        case when start_is_date
            then cast(deployment_start as date) + interval 12 hour
            else deployment_start end as effort_start,
        case when end_is_date
            then cast(deployment_end as date) + interval 12 hour
            else deployment_end end as effort_end,
        latitude,
        longitude,
        utc_offset,
        timezone,
        clock_offset_s,
        problems_listed,
        false as is_inferred
    from listed

    union all

    select * from inferred
)

select * from unioned
