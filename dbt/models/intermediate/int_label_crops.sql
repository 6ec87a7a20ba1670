{#- Every animal box a person could label on the Label page, as of this build: the counting
    candidates of stills (int_detections_resolved: the animal detector's boxes at or above its
    threshold, and boxes a reviewer confirmed) with their burst (int_media_bursts), their top-1
    classification (latest classifier run) and the key and sketch of the crop's cached
    embedding (the box's own crop, else the photo's whole frame: the one classification rule).
    Stored, so that the Label page's views (marts.fct_label_crops, marts.fct_label_queue) only
    lay the live human labels over it: ~100k boxes are read in milliseconds, not joined to
    detections, media, classifications and embeddings on every label. One row per box (with
    several embedders cached, the first by name that has a sketch).
    burst_rank 1 is the box of its burst the queue asks about (the one the head is least sure
    of; before any head, the clearest animal), and queue_order orders those bursts: a burst
    leaves the queue as a whole once any of its photos has a human label, so the order is
    fixed at the build and the live view only drops bursts.
    The per-box join is int_label_crop_boxes (incremental by media); what is left here, the
    bursts and the two ranks, moves with other photos (a late photo can join two bursts, a
    new box can go ahead of every other in the queue), so it is ranked again on each build. -#}
{{ config(materialized='table') }}

with

boxes as (
    select * exclude (crop_state) from {{ ref('int_label_crop_boxes') }}
),

bursts as (
    select media_id, burst_id from {{ ref('int_media_bursts') }}
),

ranked as (
    {#- the ranks on the three columns they order by (a window over the wide rows, sketches
        included, cost seconds at a million boxes) -#}
    select
        boxes.detection_id,
        boxes.uncertainty,
        boxes.confidence,
        coalesce(bursts.burst_id, 'media:' || boxes.media_id) as burst_id,
        row_number() over (
            partition by coalesce(bursts.burst_id, 'media:' || boxes.media_id)
            order by boxes.uncertainty desc, boxes.confidence desc, boxes.detection_id
        ) as burst_rank
    from boxes
    left join bursts
        on boxes.media_id = bursts.media_id
),

queued as (
    select
        detection_id,
        row_number() over (
            order by uncertainty desc, confidence desc, detection_id
        ) as queue_order
    from ranked
    where burst_rank = 1
),

final as (
    select
        boxes.detection_id,
        boxes.media_id,
        boxes.site_id,
        boxes.camera_id,
        ranked.burst_id,
        boxes.* exclude (detection_id, media_id, site_id, camera_id),
        ranked.burst_rank,
        queued.queue_order
    from boxes
    inner join ranked
        on boxes.detection_id = ranked.detection_id
    left join queued
        on boxes.detection_id = queued.detection_id
)

select * from final
