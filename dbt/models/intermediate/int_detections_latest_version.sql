{#- Every box of the latest version of each model run on each media (the owner of that rule):
    a model run again with a newer version replaces its earlier boxes, whatever their
    category or confidence. The latest version is the one whose boxes were stored last
    (ties: the higher version string). Counting (int_detections_filtered_to_threshold) and the
    MegaDetector JSON export (marts.fct_detector_boxes) both start from here. -#}

with

detections as (
    select * from {{ ref('stg_pipeline__detections') }}
),

model_versions_run as (
    select
        media_id,
        model_name,
        model_version,
        max(detected_at) as last_detected_at
    from detections
    group by media_id, model_name, model_version
),

latest_model_versions as (
    select
        media_id,
        model_name,
        model_version
    from model_versions_run
    qualify row_number() over (
        partition by media_id, model_name
        order by last_detected_at desc, model_version desc
    ) = 1
),

latest as (
    select detections.*
    from detections
    inner join latest_model_versions
        on
            detections.media_id = latest_model_versions.media_id
            and detections.model_name = latest_model_versions.model_name
            and detections.model_version = latest_model_versions.model_version
)

select * from latest
