{#- Every box of the latest version of each model run on each media: a model run again with a
    newer version replaces its earlier boxes, whatever their category or confidence (the rule:
    macros/latest_version.sql, latest_version_boxes). Counting
    (int_detections_filtered_to_threshold; int_detections_labelled applies the same macro to
    its changed media) and the MegaDetector JSON export (marts.fct_detector_boxes) both start
    from here. -#}

with

detections as (
    select * from {{ ref('stg_pipeline__detections') }}
),

latest as (
    {{ latest_version_boxes('detections') }}
)

select * from latest
