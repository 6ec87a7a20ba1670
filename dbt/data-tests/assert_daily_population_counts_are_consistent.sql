-- Every fct_daily_population row must be internally consistent: an image holds at least one
-- individual, so images <= detections and max_count_in_image <= detections; cameras <= images;
-- the day's first sighting is not after its last, both on captured_on; a row without images has
-- no sighting times; MaxN is 0 exactly when there is no event and Sum(MaxN) >= MaxN; effort is
-- null or positive (never 0) and RAI = 100 x events / trap_nights, null exactly when effort is.

with

daily_population as (
    select * from {{ ref('fct_daily_population') }}
),

inconsistent as (
    select *
    from daily_population
    where
        (
            images > 0 and (
                images > detections
                or max_count_in_image < 1
                or max_count_in_image > detections
                or cameras < 1
                or cameras > images
                or first_seen_at > last_seen_at
                or cast(first_seen_at as date) != captured_on
                or cast(last_seen_at as date) != captured_on
            )
        )
        or (images = 0 and (detections != 0 or first_seen_at is not null or cameras != 0))
        or events < 0
        or (events = 0) != (max_count = 0)
        or sum_max_count < max_count
        or trap_nights <= 0
        or (trap_nights is null) != (rai is null)
        or abs(rai - 100.0 * events / trap_nights) > 1e-9
)

select * from inconsistent
