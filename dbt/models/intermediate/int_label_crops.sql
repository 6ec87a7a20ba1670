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
    fixed at the build and the live view only drops bursts. -#}
{{ config(materialized='table') }}

with

boxes as (
    select *
    from {{ ref('int_detections_resolved') }}
    where
        is_built_candidate
        and built_category = 'animal'
        and not is_video
),

bursts as (
    select media_id, burst_id from {{ ref('int_media_bursts') }}
),

classifications as (
    select * from {{ ref('stg_pipeline__classifications') }}
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

joined as (
    select
        ----------  ids
        boxes.detection_id,
        boxes.media_id,
        boxes.site_id,
        boxes.camera_id,
        coalesce(bursts.burst_id, 'media:' || boxes.media_id) as burst_id,

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
        boxes.captured_at
    from boxes
    left join bursts
        on boxes.media_id = bursts.media_id
    left join top_classifications
        on boxes.detection_id = top_classifications.detection_id
    left join embedded
        on boxes.detection_id = embedded.detection_id
    qualify row_number() over (
        partition by boxes.detection_id
        order by embedded.sketch is null, embedded.embedder nulls last
    ) = 1
),

ranked as (
    select
        *,
        row_number() over (
            partition by burst_id order by uncertainty desc, confidence desc, detection_id
        ) as burst_rank
    from joined
),

final as (
    select
        *,
        case when burst_rank = 1 then row_number() over (
            partition by burst_rank = 1
            order by uncertainty desc, confidence desc, detection_id
        ) end as queue_order
    from ranked
)

select * from final
