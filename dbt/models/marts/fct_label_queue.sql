{#- What the Label page asks a person next, ordered to learn fastest: one box per burst that
    nobody has labelled (no box and no photo of the burst carries a human label), the box the
    current head is least sure of (highest uncertainty; before any head, the clearest animal:
    highest detector confidence). queue_rank 1 is asked first. A VIEW: labelling a box (or a
    similar crop of another burst) takes its burst out at once. -#}
{{ config(materialized='view') }}

with

crops as (
    select * from {{ ref('fct_label_crops') }}
),

labelled_bursts as (
    select distinct burst_id from crops where is_labelled
),

open_boxes as (
    select distinct on (detection_id)
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
    where burst_id not in (select burst_id from labelled_bursts)
    order by detection_id
),

one_per_burst as (
    select *
    from open_boxes
    qualify row_number() over (
        partition by burst_id order by uncertainty desc, confidence desc, detection_id
    ) = 1
),

final as (
    select
        row_number() over (
            order by uncertainty desc, confidence desc, detection_id
        ) as queue_rank,
        *
    from one_per_burst
)

select * from final
