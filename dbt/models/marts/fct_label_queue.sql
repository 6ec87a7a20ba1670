{#- What the Label page asks a person next, ordered to learn fastest: one box per burst that
    nobody has labelled (no photo of the burst carries a human label), the box the current head
    is least sure of (before any head, the clearest animal); queue_rank ascending is asked
    first. The ranking is the last build's (int_label_crops: burst_rank, queue_order); this
    VIEW drops, live, the bursts labelled since, so a label takes its burst (and the bursts of
    the similar crops labelled with it) out at once. -#}
{{ config(materialized='view') }}

with

crops as (
    select * from {{ ref('int_label_crops') }}
),

labelled_media as (
    select distinct media_id from {{ ref('int_human_labels') }}
),

labelled_bursts as (
    select distinct crops.burst_id
    from crops
    inner join labelled_media
        on crops.media_id = labelled_media.media_id
),

final as (
    select
        queue_order as queue_rank,
        detection_id,
        media_id,
        site_id,
        camera_id,
        burst_id,
        label,
        label_source,
        confidence,
        bbox_x,
        bbox_y,
        bbox_w,
        bbox_h,
        classifier_label,
        classifier_probability,
        uncertainty,
        captured_at
    from crops
    where
        burst_rank = 1
        and burst_id not in (select burst_id from labelled_bursts)
)

select * from final
