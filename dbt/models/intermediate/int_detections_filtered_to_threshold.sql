{#- The boxes that count: for each category only the model chosen by the vars
    (animal_detector, person_vehicle_detector), only at or above the category's
    threshold (detection_thresholds), and only from the latest version of that model
    run on the media (int_detections_latest_version: a re-run with a newer model version
    does not count twice). The rule: macros/latest_version.sql, boxes_at_threshold. -#}

with

detections as (
    select * from {{ ref('int_detections_latest_version') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

joined as (
    {{ boxes_at_threshold('detections', 'media') }}
)

select * from joined
