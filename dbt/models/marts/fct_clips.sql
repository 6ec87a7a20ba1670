{#- One row per video clip x category (issue 9): the per-clip roll-up of the boxes on its
    sampled frames. max_n is MaxN (the most counted boxes of the category in any one frame;
    people: the larger of person-detector and person-cue boxes), max_confidence the best box,
    species the label seen most often (classifier or review label when there is one).
    A clip without a counted box has one row with category 'blank'. -#}

with

clips as (
    select * from {{ ref('stg_pipeline__media') }}
    where media_type = 'video'
),

boxes as (
    select
        labelled.media_id,
        labelled.category,
        labelled.label,
        labelled.confidence,
        labelled.evidence,
        frames.frame_number,
        frames.frame_time_s
    from {{ ref('int_detections_labelled') }} as labelled
    inner join {{ ref('stg_pipeline__detections') }} as frames
        on labelled.detection_id = frames.detection_id
    inner join clips
        on labelled.media_id = clips.media_id
    where labelled.is_counted
),

per_frame as (
    select
        media_id,
        category,
        frame_number,
        min(frame_time_s) as frame_time_s,
        count(*) filter (where evidence != 'person_cue') as detector_boxes,
        count(*) filter (where evidence = 'person_cue') as cue_boxes,
        max(confidence) as max_confidence
    from boxes
    group by media_id, category, frame_number
),

per_clip as (
    select
        media_id,
        category,
        max(greatest(detector_boxes, cue_boxes)) as max_n,
        max(max_confidence) as max_confidence,
        count(*) as frames_with_detection,
        min(frame_time_s) as first_seen_s
    from per_frame
    group by media_id, category
),

species as (
    select
        media_id,
        category,
        label
    from boxes
    group by media_id, category, label
    qualify row_number() over (
        partition by media_id, category
        order by count(*) desc, max(confidence) desc, label
    ) = 1
)

select
    cast(clips.media_id as varchar) as media_id,
    cast(clips.site_id as varchar) as site_id,
    cast(clips.camera_id as varchar) as camera_id,
    cast(clips.file_path as varchar) as file_path,
    cast(clips.captured_at as timestamp) as captured_at,
    cast(clips.captured_on as date) as captured_on,
    cast(clips.timestamp_source as varchar) as timestamp_source,
    cast(clips.duration_s as double) as duration_s,
    cast(clips.fps as double) as fps,
    cast(clips.frame_count as integer) as frame_count,
    cast(clips.frames_sampled as integer) as frames_sampled,
    cast(clips.width as integer) as width,
    cast(clips.height as integer) as height,
    cast(clips.codec as varchar) as codec,
    cast(coalesce(per_clip.category, 'blank') as varchar) as category,
    cast(species.label as varchar) as species,
    cast(coalesce(per_clip.max_n, 0) as bigint) as max_n,
    cast(per_clip.max_confidence as double) as max_confidence,
    cast(coalesce(per_clip.frames_with_detection, 0) as bigint) as frames_with_detection,
    cast(per_clip.first_seen_s as double) as first_seen_s
from clips
left join per_clip
    on clips.media_id = per_clip.media_id
left join species
    on per_clip.media_id = species.media_id
    and per_clip.category = species.category
