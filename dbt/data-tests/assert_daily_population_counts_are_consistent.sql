-- Every fct_daily_population row must be internally consistent: an image holds at least one
-- box, so images <= detections and max_count_in_image <= detections; cameras <= images; the
-- day's first sighting is not after its last, both on captured_on; mean <= max confidence.

with

daily_population as (
    select * from {{ ref('fct_daily_population') }}
),

inconsistent as (
    select *
    from daily_population
    where
        images < 1
        or images > detections
        or max_count_in_image < 1
        or max_count_in_image > detections
        or cameras < 1
        or cameras > images
        or first_seen_at > last_seen_at
        or cast(first_seen_at as date) != captured_on
        or cast(last_seen_at as date) != captured_on
        or mean_confidence > max_confidence + 1e-9
        or max_confidence > 1
)

select * from inconsistent
