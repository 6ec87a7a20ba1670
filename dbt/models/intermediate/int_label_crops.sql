{#- Every animal box a person could label on the Label page, as of this build: the counting
    candidates of stills (int_detections_resolved: the animal detector's boxes at or above its
    threshold, and boxes a reviewer confirmed) with their burst (int_media_bursts), their top-1
    classification (latest classifier run) and the key and sketch of the crop's cached
    embedding (the box's own crop, else the photo's whole frame: the one classification rule).
    One row per box (with several embedders cached, the first by name that has a sketch).
    burst_rank 1 is the box of its burst the queue asks about, and queue_order orders those
    bursts: a burst leaves the queue as a whole once any of its photos has a human label, so
    the order is fixed at the build and the live views (marts.fct_label_crops,
    marts.fct_label_queue) only drop bursts.
    A view over two stored tables, joined on detection_id: the boxes (int_label_crop_boxes,
    incremental by media) and their ranks (int_label_crop_ranks, ranked again on each build:
    four narrow columns, so a build does not rewrite every box and its sketch). -#}
{{ config(materialized='view') }}

with

boxes as (
    select * exclude (crop_state) from {{ ref('int_label_crop_boxes') }}
),

ranks as (
    select * from {{ ref('int_label_crop_ranks') }}
),

final as (
    select
        boxes.detection_id,
        boxes.media_id,
        boxes.site_id,
        boxes.camera_id,
        ranks.burst_id,
        boxes.* exclude (detection_id, media_id, site_id, camera_id),
        ranks.burst_rank,
        ranks.queue_order
    from boxes
    inner join ranks
        on boxes.detection_id = ranks.detection_id
)

select * from final
