{#- The review history, one row per label a person gave (review.labels, append-only, and the
    labels imported with the photos: int_human_labels; label_origin says which), with
    where the image was taken and whether the row is the one in force (the latest for its box,
    or for its image when it labels the whole image). A view, so a review shows the moment the
    dashboard saves it. -#}
{{ config(materialized='view') }}

with

reviews as (
    select * from {{ ref('int_human_labels') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by media_id, is_image_label, coalesce(detection_id, '')
            order by reviewed_at desc, label_id desc
        ) = 1 as is_latest
    from reviews
),

final as (
    select
        ----------  ids
        cast(ranked.label_id as varchar) as label_id,
        cast(ranked.media_id as varchar) as media_id,
        cast(ranked.detection_id as varchar) as detection_id,
        cast(media.site_id as varchar) as site_id,
        cast(media.camera_id as varchar) as camera_id,

        ----------  what the reviewer said
        cast(ranked.category as varchar) as category,
        cast(ranked.label as varchar) as label,
        cast(ranked.individuals as integer) as individuals,
        cast(ranked.reviewer as varchar) as reviewer,
        cast(ranked.note as varchar) as note,
        cast(ranked.label_origin as varchar) as label_origin,

        ----------  booleans
        cast(ranked.is_false_positive as boolean) as is_false_positive,
        cast(ranked.is_image_label as boolean) as is_image_label,
        cast(ranked.is_latest as boolean) as is_latest,

        ----------  timestamps (UTC)
        cast(ranked.reviewed_at as timestamp) as reviewed_at
    from ranked
    left join media
        on ranked.media_id = media.media_id
)

select * from final
