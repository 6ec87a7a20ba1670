{#- Every box (raw.detections: every model, every confidence) with where and when its media
    was taken and the label the counting rules resolved for it at this build
    (int_detections_labelled: only counting candidates have one). Stored, so that
    marts.fct_detections, a view that lays the live reviews over it, reads a million boxes in
    tens of milliseconds instead of joining them to media and labels on every read.

    Incremental by media, following int_detections_labelled: the pre-hook deletes the media
    whose labelled state (media_state) differs from the stored one (re-labelled at this build,
    or no longer a candidate), and the build inserts every media not stored (those, and new
    media). Raw is append-only, so nothing else about a media changes. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where media_id in (select coalesce(built.media_id, stored.media_id) from (select media_id, any_value(media_state) as media_state from {{ ref('int_detections_labelled') }} group by media_id) as built full join (select media_id, any_value(media_state) as media_state from {{ this }} where media_state is not null group by media_id) as stored on built.media_id = stored.media_id where built.media_state is distinct from stored.media_state){% endif %}",
) }}

with

detections as (
    select * from {{ ref('stg_pipeline__detections') }}
    {% if is_incremental() -%}
    where media_id not in (select distinct media_id from {{ this }})
    {%- endif %}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

labelled as (
    select * from {{ ref('int_detections_labelled') }}
),

final as (
    select
        ----------  ids
        detections.detection_id,
        detections.media_id,
        media.site_id,
        media.camera_id,
        detections.run_id,

        ----------  model
        detections.model_name,
        detections.model_version,

        ----------  what the model found, and what the build resolved
        detections.category as detector_category,
        detections.label as detector_label,
        labelled.category as built_category,
        labelled.label as built_label,
        labelled.label_source as built_label_source,
        detections.confidence,

        ----------  box
        detections.bbox_x,
        detections.bbox_y,
        detections.bbox_w,
        detections.bbox_h,
        detections.frame_number,
        detections.frame_time_s,

        ----------  booleans
        labelled.detection_id is not null as is_built_candidate,
        media.media_type = 'video' as is_video,

        ----------  dates and timestamps (captured_*: camera-local)
        media.captured_on,
        media.captured_at,
        detections.detected_at,

        ----------  incremental bookkeeping (null: not a candidate at this build)
        labelled.media_state
    from detections
    inner join media
        on detections.media_id = media.media_id
    left join labelled
        on detections.detection_id = labelled.detection_id
)

select * from final
