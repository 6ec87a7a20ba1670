{#- Every dated photo with the evidence the clock checks compare (marts.fct_time_problems):

    captured_at: the time the marts use (int_media_located: the clock shifts applied, the
    accepted ones of review.clock_shifts too), so a shift that fixes a clock makes its
    day/night problem go.
    ocr_offset_s: the info bar's printed time minus the EXIF time (photos timed by EXIF whose
    info bar was read, setting ocr_every_photo); file_offset_s: the file's wall time (its
    mtime as the ingest machine's local time) minus the EXIF time. Both only for photos with no
    clock shift: once a shift is listed or accepted for a camera, its clock has been decided
    (the info bar and the file time come from the same camera clock, so after a 12-hour fix
    they would only ask to undo it).

    sun_elevation: the sun's height at the place and time (solar_elevation macro) and at
    12 hours later (sun_elevation_12h); the place is the photo's GPS, else its deployment's
    coordinates; UTC is captured_at minus the photo's EXIF offset, else its deployment's
    utc_offset, else the local mean time of the longitude (longitude / 15 hours: at most about
    an hour from the zone, well inside the checks' twilight margin). -#}

with

media as (
    select * from {{ ref('int_media_located') }}
    where captured_at is not null
),

files as (
    select
        media_id,
        timestamp_source,
        is_greyscale,
        ocr_captured_at,
        file_local_at
    from {{ ref('stg_pipeline__media') }}
    where media_type = 'image'
),

places as (
    select
        site_id,
        camera_id,
        avg(latitude) as latitude,
        avg(longitude) as longitude,
        min(utc_offset) as utc_offset
    from {{ ref('int_deployments_unioned') }}
    group by site_id, camera_id
),

located as (
    select
        media.media_id,
        media.site_id,
        media.camera_id,
        media.camera_captured_at,
        media.captured_at,
        media.clock_shift,
        files.timestamp_source,
        files.is_greyscale,
        files.ocr_captured_at,
        files.file_local_at,
        coalesce(media.latitude, own.latitude, station.latitude) as latitude,
        coalesce(media.longitude, own.longitude, station.longitude) as longitude,
        coalesce(media.utc_offset, own.utc_offset, station.utc_offset) as utc_offset
    from media
    inner join files
        on media.media_id = files.media_id
    left join places as own
        on media.site_id = own.site_id and media.camera_id = own.camera_id
    left join places as station
        on media.site_id = station.site_id and station.camera_id = '*'
),

zoned as (
    select
        *,
        case
            when upper(utc_offset) = 'Z' then 0
            when regexp_matches(utc_offset, '^[+-]\d{2}:?\d{2}$')
                then (case when left(utc_offset, 1) = '-' then -1 else 1 end) * (
                    cast(substr(utc_offset, 2, 2) as integer) * 60
                    + cast(right(utc_offset, 2) as integer)
                )
            when longitude is not null then cast(round(longitude * 4) as integer)
        end as utc_offset_minutes
    from located
),

timed as (
    select
        *,
        captured_at - to_minutes(utc_offset_minutes) as captured_at_utc
    from zoned
),

final as (
    select
        media_id,
        site_id,
        camera_id,
        camera_captured_at,
        captured_at,
        captured_at_utc,
        timestamp_source,
        is_greyscale,
        latitude,
        longitude,
        utc_offset_minutes,
        clock_shift,
        case when timestamp_source = 'exif' and clock_shift is null
            then epoch(ocr_captured_at) - epoch(camera_captured_at) end as ocr_offset_s,
        case when timestamp_source = 'exif' and clock_shift is null
            then epoch(file_local_at) - epoch(camera_captured_at) end as file_offset_s,
        case when latitude is not null and longitude is not null
            then {{ solar_elevation('captured_at_utc', 'latitude', 'longitude') }}
        end as sun_elevation,
        case when latitude is not null and longitude is not null
            then {{ solar_elevation('(captured_at_utc + interval 12 hour)', 'latitude', 'longitude') }}
        end as sun_elevation_12h
    from timed
)

select * from final
