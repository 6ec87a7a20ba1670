{#- Every stored box of the latest version of each model run on each media, at any
    confidence and of any category, as the detectors wrote it (no threshold, no review):
    what a MegaDetector batch output file holds (flows/formats/mdjson.py exports it). A view
    over int_detections_latest_version, the owner of the latest-version rule, so boxes
    loaded (or imported) a moment ago are in it before any build. -#}
{{ config(materialized='view') }}

select
    cast(detection_id as varchar) as detection_id,
    cast(media_id as varchar) as media_id,
    cast(model_name as varchar) as model_name,
    cast(model_version as varchar) as model_version,
    cast(category as varchar) as category,
    cast(confidence as double) as confidence,
    cast(bbox_x as double) as bbox_x,
    cast(bbox_y as double) as bbox_y,
    cast(bbox_w as double) as bbox_w,
    cast(bbox_h as double) as bbox_h,
    cast(frame_number as integer) as frame_number,
    cast(detected_at as timestamp) as detected_at
from {{ ref('int_detections_latest_version') }}
