{#- One row per site and label ever recorded there, as of now: the labels of the boxes of
    marts.live_detections that is_recorded (not a false positive; counted, or any model's box
    at or above its category's threshold) and of the latest review of each whole image (not a
    false positive). What the sensitive-site rule reads (live_sites; and exports that ask
    about other taxa than var sensitive_species). A VIEW: current between builds. -#}
{{ config(materialized='view') }}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

boxes as (
    select * from {{ ref('live_detections') }}
),

reviews as (
    select * from {{ ref('int_human_labels') }}
),

image_reviews as (
    {{ latest_reviews('reviews', 'image') }}
),

records as (
    select
        site_id,
        label,
        captured_at
    from boxes
    where is_recorded and label is not null

    union all

    select
        media.site_id,
        image_reviews.label,
        media.captured_at
    from image_reviews
    inner join media
        on image_reviews.media_id = media.media_id
    where not image_reviews.is_false_positive and image_reviews.label is not null
),

final as (
    select
        cast(site_id as varchar) as site_id,
        cast(lower(label) as varchar) as label,
        cast(count(*) as bigint) as records,
        cast(min(captured_at) as timestamp) as first_recorded_at,
        cast({{ is_sensitive_label('lower(label)') }} as boolean) as is_sensitive
    from records
    where site_id is not null
    group by site_id, lower(label)
)

select * from final
