{#- One row per media x category x label: how many individuals of it one image shows
    (`individuals`, the MaxN building block) from the counted boxes of int_detections_labelled,
    with people de-duplicated per image: an image's person count is the larger of the person
    detector's boxes and the person-cue boxes (label 'person' for both).

    An image-level human label (review.labels with no detection_id) replaces the model's
    unreviewed boxes of its category in that image: individuals = the reviewer's count, else
    the number of such boxes, else 1 (give a count when labelling several species in one image).

    Stored (read by several marts) and incremental by media (macros/incremental_media.sql):
    a media's rows are built again when its observation_state changed (its labelled
    media_state, or its human labels in force). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}{{ media_rebuild_prepare(observation_state_sql(), 'observation_state') }}{% endif %}",
    post_hook="drop table if exists {{ changed_media_relation() }}",
) }}

with

to_build as (
    {{ media_to_build(observation_state_sql(), 'observation_state') }}
),

detections as (
    select * from {{ ref('int_detections_labelled') }}
    where is_counted and media_id in (select media_id from to_build)
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
    where media_id in (select media_id from to_build)
),

reviews as (
    select * from {{ ref('int_human_labels') }}
    where media_id in (select media_id from to_build)
),

image_labels as (
    select
        media_id,
        coalesce(category, 'animal') as category,
        label,
        individuals
    from reviews
    where is_image_label and not is_false_positive and label is not null
    qualify row_number() over (
        partition by media_id, coalesce(category, 'animal'), label
        order by reviewed_at desc, label_id desc
    ) = 1
),

image_false_positives as (
    select media_id
    from reviews
    where is_image_label
    qualify row_number() over (
        partition by media_id order by reviewed_at desc, label_id desc
    ) = 1
    and is_false_positive
),

model_boxes as (
    {#- boxes not replaced by an image-level label of their category -#}
    select detections.*
    from detections
    left join (select distinct media_id, category from image_labels) as relabelled
        on detections.media_id = relabelled.media_id
        and detections.category = relabelled.category
    where relabelled.media_id is null or detections.label_source = 'review'
),

per_frame_model as (
    {#- a clip counts per sampled frame (frame_number; null for stills), then MaxN over frames -#}
    select
        model_boxes.media_id,
        frames.frame_number,
        model_boxes.category,
        case when model_boxes.category = 'person' then 'person' else model_boxes.label end
            as label,
        count(*) filter (where model_boxes.evidence != 'person_cue') as detector_boxes,
        count(*) filter (where model_boxes.evidence = 'person_cue') as cue_boxes,
        max(model_boxes.confidence) as max_confidence,
        max(model_boxes.label_source) as label_source
    from model_boxes
    left join {{ ref('stg_pipeline__detections') }} as frames
        on model_boxes.detection_id = frames.detection_id
    group by all
),

per_image_model as (
    select
        media_id,
        category,
        label,
        max(detector_boxes) as detector_boxes,
        max(cue_boxes) as cue_boxes,
        max(max_confidence) as max_confidence,
        max(label_source) as label_source
    from per_frame_model
    group by all
),

boxes_per_category as (
    select
        media_id,
        category,
        count(*) as boxes
    from detections
    group by media_id, category
),

per_image_review as (
    select
        image_labels.media_id,
        image_labels.category,
        image_labels.label,
        coalesce(image_labels.individuals, boxes_per_category.boxes, 1) as individuals
    from image_labels
    left join boxes_per_category
        on image_labels.media_id = boxes_per_category.media_id
        and image_labels.category = boxes_per_category.category
    where image_labels.media_id not in (select media_id from image_false_positives)
),

observations as (
    select
        media_id,
        category,
        label,
        greatest(detector_boxes, cue_boxes) as individuals,
        detector_boxes + cue_boxes as boxes,
        max_confidence,
        label_source
    from per_image_model

    union all

    select
        media_id,
        category,
        label,
        individuals,
        individuals as boxes,
        cast(null as double) as max_confidence,
        'review' as label_source
    from per_image_review
),

merged as (
    {#- a detection-level review can give the same label as an image-level one: one row -#}
    select
        media_id,
        category,
        label,
        max(individuals) as individuals,
        max(boxes) as boxes,
        max(max_confidence) as max_confidence,
        max(label_source) as label_source
    from observations
    where individuals > 0
    group by media_id, category, label
),

final as (
    select
        merged.media_id,
        media.site_id,
        media.camera_id,
        merged.category,
        merged.label,
        merged.category = 'person' as is_human,
        merged.individuals,
        merged.boxes,
        merged.max_confidence,
        merged.label_source,
        media.captured_on,
        media.captured_at,

        ----------  incremental bookkeeping
        to_build.observation_state
    from merged
    inner join media
        on merged.media_id = media.media_id
    inner join to_build
        on merged.media_id = to_build.media_id
)

select * from final
