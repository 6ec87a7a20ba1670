{#- One row per animal box a person could label on the Label page (a counting candidate of a
    still that is not a false positive: marts.fct_detections, live), with what the Label page
    and "train now" need beside it:
    - burst_id (int_media_bursts): one frame per burst in the queue, and the split;
    - the box's top-1 classification (latest classifier run) and the uncertainty the queue
      orders by: 1 - its probability; a box no head has labelled yet is 1;
    - the human label in force: the latest review of the box, else of its whole image (the
      dashboard's, or one imported with the photo: int_human_labels), with its origin;
    - the crop's cached embedding and sketch, one row per embedder (null when none is
      cached): the box's own crop, else the photo's whole frame (the one classification rule
      classifies a photo on its whole frame when no box reaches classification_min_confidence).
    A VIEW over the live views: a label saved on the page takes the box out of the queue at
    once. "train now" trains on the rows with a human label and an embedding. -#}
{{ config(materialized='view') }}

with

boxes as (
    select *
    from {{ ref('fct_detections') }}
    where
        is_candidate
        and category = 'animal'
        and not is_false_positive
        and not is_video
),

bursts as (
    select media_id, burst_id from {{ ref('int_media_bursts') }}
),

reviews as (
    select * from {{ ref('int_human_labels') }}
),

box_labels as (
    {{ latest_reviews('reviews', 'box') }}
),

image_labels as (
    {{ latest_reviews('reviews', 'image') }}
),

classifications as (
    select * from {{ ref('stg_pipeline__classifications') }}
),

top_classifications as (
    {{ top_classifications('classifications') }}
),

embeddings as (
    select * from {{ ref('stg_pipeline__crop_embeddings') }}
),

embedded as (
    {#- the box's own crop, else the photo's whole frame, per embedder -#}
    select
        boxes.detection_id,
        coalesce(own.embedder, whole.embedder) as embedder,
        coalesce(own.embedding, whole.embedding) as embedding,
        coalesce(own.sketch, whole.sketch) as sketch,
        own.media_id is null as is_whole_frame_crop
    from boxes
    left join embeddings as own
        on boxes.detection_id = own.detection_id
    left join embeddings as whole
        on
            boxes.media_id = whole.media_id
            and whole.is_whole_frame
            and own.media_id is null
),

final as (
    select
        ----------  ids
        boxes.detection_id,
        boxes.media_id,
        boxes.site_id,
        boxes.camera_id,
        coalesce(bursts.burst_id, 'media:' || boxes.media_id) as burst_id,

        ----------  the box and its labels now
        boxes.label,
        boxes.label_source,
        boxes.confidence,
        boxes.bbox_x,
        boxes.bbox_y,
        boxes.bbox_w,
        boxes.bbox_h,
        top_classifications.label as classifier_label,
        top_classifications.probability as classifier_probability,
        top_classifications.model_name as classifier_model,
        1.0 - coalesce(top_classifications.probability, 0.0) as uncertainty,

        ----------  what a person said
        coalesce(
            case when box_labels.is_false_positive then null else box_labels.label end,
            case when image_labels.is_false_positive then null else image_labels.label end
        ) as human_label,
        case
            when box_labels.label is not null then box_labels.label_origin
            when image_labels.label is not null then image_labels.label_origin
        end as human_label_origin,
        box_labels.label_id is not null or image_labels.label_id is not null as is_labelled,

        ----------  the crop's cached vectors
        embedded.embedder,
        embedded.embedding,
        embedded.sketch,
        embedded.is_whole_frame_crop,

        ----------  timestamps
        boxes.captured_at
    from boxes
    left join bursts
        on boxes.media_id = bursts.media_id
    left join top_classifications
        on boxes.detection_id = top_classifications.detection_id
    left join box_labels
        on boxes.detection_id = box_labels.detection_id
    left join image_labels
        on boxes.media_id = image_labels.media_id
    left join embedded
        on boxes.detection_id = embedded.detection_id
)

select * from final
