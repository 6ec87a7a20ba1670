{#- Each clip's behaviour timeline: one row per segment of consecutive sampled frames that a
    behaviour head gave the same label (the latest version of each head that labelled the
    clip). Segments cover the clip end to end: the first starts at 0 s, each ends where the
    next starts, the last at the clip's duration (or its last sampled frame when the container
    gave none). confidence is the mean probability of the segment's frames. -#}
{{ config(materialized='table') }}

with

current_frames as (
    select * from {{ ref('fct_clip_frames') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

islands as (
    select
        *,
        row_number() over (partition by media_id, model_name order by frame_number)
        - row_number() over (partition by media_id, model_name, label order by frame_number)
            as island
    from current_frames
),

segments as (
    select
        media_id,
        model_name,
        model_version,
        label,
        min(frame_number) as first_frame,
        min(frame_time_s) as first_frame_s,
        max(frame_time_s) as last_frame_s,
        count(*) as frames,
        avg(probability) as confidence
    from islands
    group by media_id, model_name, model_version, label, island
),

ordered as (
    select
        segments.*,
        row_number() over (
            partition by segments.media_id, segments.model_name order by segments.first_frame
        ) as segment_number,
        lead(segments.first_frame_s) over (
            partition by segments.media_id, segments.model_name order by segments.first_frame
        ) as next_start_s
    from segments
)

select
    ordered.media_id,
    media.site_id,
    media.camera_id,
    media.file_path,
    ordered.model_name,
    ordered.model_version,
    ordered.segment_number,
    ordered.label,
    case when ordered.segment_number = 1 then 0.0 else ordered.first_frame_s end as start_s,
    coalesce(
        ordered.next_start_s,
        greatest(media.duration_s, ordered.last_frame_s),
        ordered.last_frame_s
    ) as end_s,
    ordered.frames,
    round(ordered.confidence, 4) as confidence
from ordered
inner join media on ordered.media_id = media.media_id
