{#- Every media file with its clock shifts applied and its GPS checked.

    captured_at: the camera's time plus every clock shift of its site and camera
    (int_clock_shifts; '*' = every camera of the site), as camtrapR's timeShiftImages would
    have rewritten it; camera_captured_at is the time the camera wrote.

    GPS placeholders are not places (is_gps_placeholder, gps_placeholder_reason):
    'zero' = (0, 0), which Moultrie and other cameras write without a fix; 'shared' = the same
    coordinates (to 5 decimals, about 1 m) written at more than one site, the fake fixed value
    some cameras write (e.g. 1.0225, 1.0225). latitude/longitude are null for them. -#}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

shifts as (
    select * from {{ ref('int_clock_shifts') }}
),

shift_per_media as (
    select
        media.media_id,
        sum(shifts.shift_months) as months,
        sum(shifts.shift_days) as days,
        sum(shifts.shift_micros) as micros,
        string_agg(shifts.shift_text, ' ' order by shifts.camera_id) as shift_text
    from media
    inner join shifts
        on media.site_id = shifts.site_id
        and (shifts.camera_id = media.camera_id or shifts.camera_id = '*')
    group by media.media_id
),

gps as (
    select
        media_id,
        latitude,
        longitude,
        case
            when latitude = 0 and longitude = 0 then 'zero'
            when count(distinct site_id) over (
                partition by round(latitude, 5), round(longitude, 5)
            ) > 1 then 'shared'
        end as gps_placeholder_reason
    from media
    where latitude is not null and longitude is not null
),

final as (
    select
        media.media_id,
        media.site_id,
        media.camera_id,
        media.captured_at as camera_captured_at,
        case when shift_per_media.media_id is null then media.captured_at
            else media.captured_at
                + to_months(cast(shift_per_media.months as integer))
                + to_days(cast(shift_per_media.days as integer))
                + to_microseconds(cast(shift_per_media.micros as bigint))
        end as captured_at,
        shift_per_media.shift_text as clock_shift,
        media.utc_offset,
        gps.latitude as gps_latitude,
        gps.longitude as gps_longitude,
        case when gps.gps_placeholder_reason is null then gps.latitude end as latitude,
        case when gps.gps_placeholder_reason is null then gps.longitude end as longitude,
        gps.gps_placeholder_reason is not null as is_gps_placeholder,
        gps.gps_placeholder_reason
    from media
    left join shift_per_media
        on media.media_id = shift_per_media.media_id
    left join gps
        on media.media_id = gps.media_id
)

select * from final
