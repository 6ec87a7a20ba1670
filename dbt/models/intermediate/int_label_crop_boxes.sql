{#- The per-box part of int_label_crops, stored: every animal box of a still a person could
    label (int_detections_resolved's counting candidates), its top-1 classification (latest
    classifier run) and the key and sketch of the crop's cached embedding (the box's own crop,
    else the photo's whole frame; with several embedders cached, the first by name that has a
    sketch). Bursts and the queue's ranks are int_label_crop_ranks' (they move with other photos).

    Incremental by media (macros/incremental_label_crops.sql, incremental_media.sql:
    media_rebuild_prepare): a media's boxes are built again
    when its crop_state differs from the stored one: the labelled media_state (its boxes,
    classifications, reviews, flags, the counting vars) and a digest of its cached
    embeddings (a sketch is filled in later by `trapflow embed`). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}{{ media_rebuild_prepare(label_crop_state_sql(), 'crop_state') }}{% endif %}",
    post_hook="drop table if exists {{ changed_media_relation() }}",
) }}

with

crop_state as (
    {{ media_to_build(label_crop_state_sql(), 'crop_state') }}
),

boxes as (
    select *
    from {{ ref('int_detections_resolved') }}
    where
        is_built_candidate
        and built_category = 'animal'
        and not is_video
        and media_id in (select media_id from crop_state)
),

classifications as (
    select * from {{ ref('stg_pipeline__classifications') }}
    where media_id in (select media_id from boxes)
),

top_classifications as (
    {{ top_classifications('classifications') }}
),

embeddings as (
    select media_id, crop_key, detection_id, is_whole_frame, embedder, sketch
    from {{ ref('stg_pipeline__crop_embeddings') }}
),

embedded as (
    {#- the box's own crop, else the photo's whole frame, per embedder -#}
    select
        boxes.detection_id,
        coalesce(own.embedder, whole.embedder) as embedder,
        coalesce(own.crop_key, whole.crop_key) as crop_key,
        -- the first of the two that is there (duckdb 1.5's coalesce/case refuse FLOAT[n] arrays)
        list_filter([own.sketch, whole.sketch], lambda s: s is not null)[1] as sketch,
        own.media_id is null and whole.media_id is not null as is_whole_frame_crop
    from boxes
    {{ box_crop_embedding_joins('boxes', 'embeddings') }}
),

final as (
    select
        ----------  ids
        boxes.detection_id,
        boxes.media_id,
        boxes.site_id,
        boxes.camera_id,

        ----------  the box and its label at this build
        boxes.built_label as label,
        boxes.built_label_source as label_source,
        boxes.confidence,
        boxes.bbox_x,
        boxes.bbox_y,
        boxes.bbox_w,
        boxes.bbox_h,
        top_classifications.label as classifier_label,
        top_classifications.probability as classifier_probability,
        top_classifications.model_name as classifier_model,
        1.0 - coalesce(top_classifications.probability, 0.0) as uncertainty,

        ----------  the crop's cached embedding: its key and sketch
        embedded.embedder,
        embedded.crop_key,
        embedded.sketch,
        coalesce(embedded.is_whole_frame_crop, false) as is_whole_frame_crop,

        ----------  timestamps
        boxes.captured_at,

        ----------  incremental bookkeeping
        crop_state.crop_state
    from boxes
    inner join crop_state
        on boxes.media_id = crop_state.media_id
    left join top_classifications
        on boxes.detection_id = top_classifications.detection_id
    left join embedded
        on boxes.detection_id = embedded.detection_id
    qualify row_number() over (
        partition by boxes.detection_id
        order by embedded.sketch is null, embedded.embedder nulls last
    ) = 1
)

select * from final
