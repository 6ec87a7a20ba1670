{#- One row per box (raw.detections, every model and confidence, as of the last build:
    int_detections_resolved) with where and when it was taken and its label as it stands now.
    A view that reads the reviews live, so a review saved on the dashboard shows at once: the
    latest review of the box wins, then the label the last build resolved (classifier, else
    detector), then the detector's.

    is_counted is the box's verdict now: a counting candidate at the last build (or a box a
    reviewer has confirmed since) that no review marks a false positive (the box, or its whole
    image) and that is not flagged repeat_detection. The population marts (tables) catch up on
    the next build. -#}
{{ config(materialized='view') }}

with

boxes as (
    select * from {{ ref('int_detections_resolved') }}
),

reviews as (
    select * from {{ ref('int_human_labels') }}
),

box_reviews as (
    {{ latest_reviews('reviews', 'box') }}
),

image_verdicts as (
    select media_id, is_false_positive
    from ({{ latest_reviews('reviews', 'image') }})
),

repeat_flags as (
    select distinct detection_id
    from {{ ref('stg_pipeline__detection_flags') }}
    where flag = 'repeat_detection'
),

joined as (
    select
        boxes.*,
        box_reviews.label_id is not null as is_reviewed,
        box_reviews.category as review_category,
        box_reviews.label as review_label,
        box_reviews.is_false_positive as is_review_false_positive,
        box_reviews.reviewed_at,
        image_verdicts.is_false_positive as is_image_false_positive,
        repeat_flags.detection_id is not null as is_repeat_detection
    from boxes
    left join box_reviews
        on boxes.detection_id = box_reviews.detection_id
    left join image_verdicts
        on boxes.media_id = image_verdicts.media_id
    left join repeat_flags
        on boxes.detection_id = repeat_flags.detection_id
),

resolved as (
    select
        *,
        coalesce(is_review_false_positive, false)
        or coalesce(is_image_false_positive, false) as is_false_positive,
        is_built_candidate
        or (is_reviewed and not is_review_false_positive) as is_candidate,
        case
            when review_label is not null then 'review'
            when is_built_candidate and built_label_source != 'review' then built_label_source
            else 'detector'
        end as label_source
    from joined
),

final as (
    select
        ----------  ids
        cast(detection_id as varchar) as detection_id,
        cast(media_id as varchar) as media_id,
        cast(site_id as varchar) as site_id,
        cast(camera_id as varchar) as camera_id,
        cast(run_id as varchar) as run_id,

        ----------  model
        cast(model_name as varchar) as model_name,
        cast(model_version as varchar) as model_version,
        cast(model_name || '@' || model_version as varchar) as model_ref,

        ----------  what was found, and what it is now
        cast(detector_category as varchar) as detector_category,
        cast(detector_label as varchar) as detector_label,
        cast(
            coalesce(nullif(review_category, 'blank'), built_category, detector_category)
            as varchar
        ) as category,
        cast(case label_source
            when 'review' then review_label
            when 'detector' then detector_label
            else built_label
        end as varchar) as label,
        cast(label_source as varchar) as label_source,
        cast(confidence as double) as confidence,

        ----------  box, normalised [x_min, y_min, width, height]
        cast(bbox_x as double) as bbox_x,
        cast(bbox_y as double) as bbox_y,
        cast(bbox_w as double) as bbox_w,
        cast(bbox_h as double) as bbox_h,

        ----------  video clips (null for stills)
        cast(frame_number as integer) as frame_number,
        cast(frame_time_s as double) as frame_time_s,

        ----------  booleans
        cast(is_video as boolean) as is_video,
        cast(is_candidate as boolean) as is_candidate,
        cast(
            is_candidate and not is_false_positive and not is_repeat_detection as boolean
        ) as is_counted,
        cast(is_false_positive as boolean) as is_false_positive,
        cast(is_repeat_detection as boolean) as is_repeat_detection,
        cast(is_reviewed as boolean) as is_reviewed,

        ----------  dates and timestamps (captured_*: camera-local; the rest UTC)
        cast(captured_on as date) as captured_on,
        cast(captured_at as timestamp) as captured_at,
        cast(detected_at as timestamp) as detected_at,
        cast(reviewed_at as timestamp) as reviewed_at
    from resolved
)

select * from final
