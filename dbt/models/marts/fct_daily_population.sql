{#- One row per camera-local date x site x category x label: what the counted boxes
    (int_detections_filtered_to_threshold) say about who was there that day. -#}

with

detections as (
    select * from {{ ref('int_detections_filtered_to_threshold') }}
),

dated_detections as (
    select * from detections
    where captured_at is not null
),

per_image as (
    select
        captured_on,
        site_id,
        category,
        label,
        media_id,
        camera_id,
        captured_at,
        count(*) as boxes,
        sum(confidence) as sum_confidence,
        max(confidence) as max_confidence
    from dated_detections
    group by
        captured_on,
        site_id,
        category,
        label,
        media_id,
        camera_id,
        captured_at
),

per_day as (
    select
        captured_on,
        site_id,
        category,
        label,
        count(*) as images,
        sum(boxes) as detections,
        max(boxes) as max_count_in_image,
        count(distinct camera_id) as cameras,
        min(captured_at) as first_seen_at,
        max(captured_at) as last_seen_at,
        sum(sum_confidence) / sum(boxes) as mean_confidence,
        max(max_confidence) as max_confidence
    from per_image
    group by
        captured_on,
        site_id,
        category,
        label
),

final as (
    select
        cast(captured_on as date) as captured_on,
        cast(site_id as varchar) as site_id,
        cast(category as varchar) as category,
        cast(label as varchar) as label,
        cast(images as bigint) as images,
        cast(detections as bigint) as detections,
        cast(max_count_in_image as bigint) as max_count_in_image,
        cast(cameras as bigint) as cameras,
        cast(first_seen_at as timestamp) as first_seen_at,
        cast(last_seen_at as timestamp) as last_seen_at,
        cast(mean_confidence as double) as mean_confidence,
        cast(max_confidence as double) as max_confidence
    from per_day
)

select * from final
