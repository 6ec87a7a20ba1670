{#- The Label page's order, as of this build: for each animal box a person could label
    (int_label_crop_boxes) its burst (int_media_bursts; a photo without one is its own),
    burst_rank (1: the box of its burst the queue asks about, the one the head is least sure
    of; before any head, the clearest animal) and queue_order (the order of those boxes, least
    certain first). Both move with other photos (a late photo can join two bursts, a new box
    can go ahead of every other in the queue), so they are ranked again on each build; only
    these four narrow columns are written, and int_label_crops lays them over the stored
    boxes. -#}
{{ config(materialized='table') }}

with

boxes as (
    select
        detection_id,
        media_id,
        uncertainty,
        confidence
    from {{ ref('int_label_crop_boxes') }}
),

bursts as (
    select media_id, burst_id from {{ ref('int_media_bursts') }}
),

ranked as (
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
        ranked.detection_id,
        ranked.burst_id,
        ranked.burst_rank,
        queued.queue_order
    from ranked
    left join queued
        on ranked.detection_id = queued.detection_id
)

select * from final
