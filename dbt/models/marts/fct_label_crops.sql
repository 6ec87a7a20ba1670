{#- One row per animal box a person could label on the Label page (and cached embedder):
    int_label_crops (a table of the last build: the box, its burst, top-1 classification and
    uncertainty, the key and sketch of its crop's cached embedding) with the human label in
    force laid over it live: the latest review of the box, else of its whole image (the
    dashboard's, or one imported with the photo: int_human_labels), and its origin. A VIEW: a
    label saved on the page takes the box out of the queue at once. The full embeddings are in
    marts.fct_crop_embeddings (joined on media_id, crop_key, embedder). -#}
{{ config(materialized='view') }}

with

crops as (
    select * from {{ ref('int_label_crops') }}
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

final as (
    select
        ----------  ids
        crops.detection_id,
        crops.media_id,
        crops.site_id,
        crops.camera_id,
        crops.burst_id,

        ----------  the box and its labels at the last build
        crops.label,
        crops.label_source,
        crops.confidence,
        crops.bbox_x,
        crops.bbox_y,
        crops.bbox_w,
        crops.bbox_h,
        crops.classifier_label,
        crops.classifier_probability,
        crops.classifier_model,
        crops.uncertainty,

        ----------  what a person said (a false positive is a verdict too: labelled)
        coalesce(
            case when box_labels.is_false_positive then null else box_labels.label end,
            case when image_labels.is_false_positive then null else image_labels.label end
        ) as human_label,
        case
            when box_labels.label_id is not null then box_labels.label_origin
            when image_labels.label_id is not null then image_labels.label_origin
        end as human_label_origin,
        box_labels.label_id is not null or image_labels.label_id is not null as is_labelled,

        ----------  the crop's cached embedding: key and sketch
        crops.embedder,
        crops.crop_key,
        crops.sketch,
        crops.is_whole_frame_crop,

        ----------  timestamps
        crops.captured_at
    from crops
    left join box_labels
        on crops.detection_id = box_labels.detection_id
    left join image_labels
        on crops.media_id = image_labels.media_id
)

select * from final
