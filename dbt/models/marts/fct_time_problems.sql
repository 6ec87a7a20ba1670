{#- One row per site x camera x kind of clock problem, with the shift that would fix it (the
    evidence: int_media_time_evidence; the thresholds: vars time_check_*).

    exif_vs_ocr / exif_vs_file_time: the photo's EXIF time against the info bar's printed time
    / the file's wall time, on photos without a clock shift (a listed or accepted shift settles
    the camera's clock). A problem when at least time_check_min_photos
    photos were checked, at least time_check_min_share of them are more than
    time_check_tolerance_minutes off, and at least that share lie within the tolerance of the
    median offset (one clock error, not copy times scattered at random); the proposal moves
    the photos' time by the median offset.

    day_night_swap: on a camera that took both greyscale (IR night) and colour photos, a colour
    photo while the sun is below -day_night_sun_degrees or a greyscale one while it is above
    +day_night_sun_degrees disagrees (twilight is not checked). A problem when the share
    disagreeing and the share agreeing 12 hours later are both >= time_check_min_share; the
    proposal is +12 h when most disagreeing photos show a morning hour (13:00 written as 01:00),
    else -12 h.

    The proposal in camtrapR's timeShiftTable form: proposed_timeshift '0:0:0 H:M:S' and
    proposed_sign, as flows/store/time_shifts.py:parse_shift reads them; proposed_shift_text is
    the two together, as raw.clock_shifts.shift_text keeps it. -#}

{%- set checks = time_check_settings() -%}
{%- set tolerance_s = checks.tolerance_s -%}
{%- set min_photos = checks.time_check_min_photos -%}
{%- set min_share = checks.time_check_min_share -%}
{%- set sun = checks.day_night_sun_degrees %}

with

evidence as (
    select * from {{ ref('int_media_time_evidence') }}
),

offsets as (
    select site_id, camera_id, 'exif_vs_ocr' as kind, ocr_offset_s as offset_s
    from evidence
    where ocr_offset_s is not null
    union all
    select site_id, camera_id, 'exif_vs_file_time' as kind, file_offset_s as offset_s
    from evidence
    where file_offset_s is not null
),

offset_medians as (
    select
        site_id,
        camera_id,
        kind,
        median(offset_s) as median_offset_s
    from offsets
    group by site_id, camera_id, kind
),

offset_checks as (
    select
        offsets.site_id,
        offsets.camera_id,
        offsets.kind,
        count(*) as photos_checked,
        count(*) filter (where abs(offsets.offset_s) > {{ tolerance_s }}) as photos_disagreeing,
        count(*) filter (
            where abs(offsets.offset_s - offset_medians.median_offset_s) <= {{ tolerance_s }}
        ) as photos_fixed,
        any_value(offset_medians.median_offset_s) as median_offset_s,
        cast(round(any_value(offset_medians.median_offset_s)) as bigint) as proposed_shift_s
    from offsets
    inner join offset_medians
        on offsets.site_id = offset_medians.site_id
        and offsets.camera_id = offset_medians.camera_id
        and offsets.kind = offset_medians.kind
    group by offsets.site_id, offsets.camera_id, offsets.kind
    having abs(any_value(offset_medians.median_offset_s)) > {{ tolerance_s }}
),

day_night_photos as (
    select
        site_id,
        camera_id,
        is_greyscale,
        (not is_greyscale and sun_elevation < -{{ sun }})
        or (is_greyscale and sun_elevation > {{ sun }}) as is_disagreeing,
        (is_greyscale and sun_elevation_12h < -{{ sun }})
        or (not is_greyscale and sun_elevation_12h > {{ sun }}) as is_fixed_by_12h,
        hour(camera_captured_at) < 12 as is_morning
    from evidence
    where is_greyscale is not null and abs(sun_elevation) > {{ sun }}
),

day_night_checks as (
    select
        site_id,
        camera_id,
        'day_night_swap' as kind,
        count(*) as photos_checked,
        count(*) filter (where is_disagreeing) as photos_disagreeing,
        count(*) filter (where is_fixed_by_12h) as photos_fixed,
        case when count(*) filter (where is_disagreeing and is_morning)
            >= count(*) filter (where is_disagreeing and not is_morning)
            then 43200 else -43200 end as proposed_shift_s
    from day_night_photos
    group by site_id, camera_id
    having count(*) filter (where is_greyscale) > 0 and count(*) filter (where not is_greyscale) > 0
),

checks as (
    select
        site_id, camera_id, kind, photos_checked, photos_disagreeing, photos_fixed,
        median_offset_s, proposed_shift_s
    from offset_checks
    union all
    select
        site_id, camera_id, kind, photos_checked, photos_disagreeing, photos_fixed,
        cast(proposed_shift_s as double) as median_offset_s, proposed_shift_s
    from day_night_checks
),

problems as (
    select *
    from checks
    where
        photos_checked >= {{ min_photos }}
        and photos_disagreeing >= {{ min_share }} * photos_checked
        and photos_fixed >= {{ min_share }} * photos_checked
),

final as (
    select
        md5(concat_ws('|', site_id, camera_id, kind)) as time_problem_id,
        site_id,
        camera_id,
        kind,
        cast(photos_checked as bigint) as photos_checked,
        cast(photos_disagreeing as bigint) as photos_disagreeing,
        cast(photos_fixed as bigint) as photos_fixed_by_shift,
        cast(median_offset_s as double) as median_offset_s,
        cast(proposed_shift_s as bigint) as proposed_shift_s,
        '0:0:0 ' || (abs(proposed_shift_s) // 3600) || ':'
        || ((abs(proposed_shift_s) % 3600) // 60) || ':'
        || (abs(proposed_shift_s) % 60) as proposed_timeshift,
        case when proposed_shift_s < 0 then '-' else '+' end as proposed_sign
    from problems
)

select
    *,
    proposed_sign || proposed_timeshift as proposed_shift_text
from final
