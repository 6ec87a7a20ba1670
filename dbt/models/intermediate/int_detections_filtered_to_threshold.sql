{#- The boxes that count: for each category only the model chosen by the vars
    (animal_detector, person_vehicle_detector), only at or above the category's
    threshold (detection_thresholds), and only from the latest version of that model
    run on the media (int_detections_latest_version: a re-run with a newer model version
    does not count twice). -#}

with

detections as (
    select * from {{ ref('int_detections_latest_version') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

detection_rules as (
    {{ detection_rules_relation() }}
),

counted as (
    select
        detections.*,
        detection_rules.min_confidence
    from detections
    inner join detection_rules
        on
            detections.category = detection_rules.category
            and detections.model_name = detection_rules.model_name
    where detections.confidence >= detection_rules.min_confidence
),

joined as (
    select
        ----------  ids
        counted.detection_id,
        counted.media_id,
        media.site_id,
        media.camera_id,
        counted.run_id,

        ----------  model
        counted.model_name,
        counted.model_version,
        counted.model_ref,

        ----------  what was found
        counted.category,
        counted.category_id,
        counted.label,
        counted.confidence,
        counted.min_confidence,

        ----------  box
        counted.bbox_x,
        counted.bbox_y,
        counted.bbox_w,
        counted.bbox_h,
        counted.bbox_area,
        counted.frame_number,

        ----------  dates (camera-local)
        media.captured_on,

        ----------  timestamps
        media.captured_at,
        counted.detected_at

    from counted
    inner join media
        on counted.media_id = media.media_id
)

select * from joined
