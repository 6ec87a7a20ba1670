{#- The clock shifts of each site x camera ('*' = every camera of the site): the station's
    timeShiftTable rows (shift_origin 'time_shift_table') and the shifts accepted on the
    dashboard's Time problems page (review.clock_shifts, shift_origin 'review'). Every shift that
    matches a photo is added to its camera time (a station-wide shift and a camera's own add up;
    int_media_located). -#}

{%- set columns = 'site_id, camera_id, shift_months, shift_days, shift_micros, shift_text, shift_origin' %}

select {{ columns }} from {{ ref('stg_pipeline__clock_shifts') }}
union all
select {{ columns }} from {{ ref('stg_review__clock_shifts') }}
