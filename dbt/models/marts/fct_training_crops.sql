{#- What "train now" trains on: one row per labelled crop and embedder. People's labels in
    force (int_human_labels: the Label and Review pages' reviews, and the labels imported with
    the photos) that name an animal and are not false positives, on the crops the one
    classification rule picks, whose embeddings a run, a relabel or `trapflow embed` cached:
    - a box's label: that box's crop, else the photo's whole frame;
    - a whole photo's label: every cached crop of the photo (its boxes at or above
      classification_min_confidence, or its whole frame) but the boxes labelled on their own.
    A labelled photo with nothing cached has one row with a null embedder: train now embeds
    it first. burst_id (int_media_bursts) keeps a visit's frames on one side of the split. -#}
{{ config(materialized='view') }}

with

reviews as (
    select * from {{ ref('int_human_labels') }}
),

box_labels as (
    select * from ({{ latest_reviews('reviews', 'box') }})
    where
        not is_false_positive
        and label is not null
        and coalesce(category, 'animal') = 'animal'
),

image_labels as (
    select * from ({{ latest_reviews('reviews', 'image') }})
    where
        not is_false_positive
        and label is not null
        and coalesce(category, 'animal') = 'animal'
),

embeddings as (
    select * from {{ ref('stg_pipeline__crop_embeddings') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
    where media_type = 'image'
),

bursts as (
    select media_id, burst_id from {{ ref('int_media_bursts') }}
),

from_boxes as (
    select
        box_labels.media_id,
        box_labels.detection_id,
        box_labels.label,
        box_labels.label_origin,
        coalesce(own.crop_key, whole.crop_key) as crop_key,
        coalesce(own.embedder, whole.embedder) as embedder,
        coalesce(own.embedding, whole.embedding) as embedding
    from box_labels
    {{ box_crop_embedding_joins('box_labels', 'embeddings') }}
),

from_images as (
    select
        image_labels.media_id,
        embeddings.detection_id,
        image_labels.label,
        image_labels.label_origin,
        embeddings.crop_key,
        embeddings.embedder,
        embeddings.embedding
    from image_labels
    left join embeddings
        on
            image_labels.media_id = embeddings.media_id
            and (
                embeddings.detection_id is null
                or embeddings.detection_id not in (select detection_id from box_labels)
            )
),

unioned as (
    select * from from_boxes
    union all
    select * from from_images
),

final as (
    select
        ----------  ids
        unioned.media_id,
        unioned.detection_id,
        unioned.crop_key,
        media.site_id,
        media.camera_id,
        coalesce(bursts.burst_id, 'media:' || unioned.media_id) as burst_id,

        ----------  the label and where it came from
        trim(unioned.label) as label,
        unioned.label_origin,

        ----------  the vector
        unioned.embedder,
        unioned.embedding,

        ----------  timestamps
        media.captured_at
    from unioned
    inner join media
        on unioned.media_id = media.media_id
    left join bursts
        on unioned.media_id = bursts.media_id
)

select * from final
