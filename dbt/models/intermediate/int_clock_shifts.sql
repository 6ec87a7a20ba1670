{#- The clock shifts of each site x camera ('*' = every camera of the site): the station's
    timeShiftTable rows. Every shift that matches a photo is added to its camera time (a
    station-wide shift and a camera's own add up; int_media_located). -#}

with

shifts as (
    select
        site_id,
        camera_id,
        shift_months,
        shift_days,
        shift_micros,
        shift_text,
        shift_origin
    from {{ ref('stg_pipeline__clock_shifts') }}
)

select * from shifts
