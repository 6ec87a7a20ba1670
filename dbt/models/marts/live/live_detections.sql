{#- One row per stored box (raw.detections: every model, every confidence, every sampled
    frame) with the counting rules' verdict as of now. A VIEW over the staging views, never
    over a built table: a box loaded a moment ago, or a review saved on the dashboard, shows
    at once, before any build (alerts read it right after a batch is loaded).

    The rules are the marts' own (the macros detection_rules, latest_reviews and
    detection_candidates): is_candidate and is_counted are what int_detections_labelled (and
    so every population mart) decides at the next build, label/label_source/category what it
    would resolve. Two more verdicts for alerts and privacy, which err on the side of caution:
    is_above_threshold (any model's box at or above its category's threshold: the second
    opinion) and is_recorded (not a false positive, and a candidate or above threshold). -#}
{{ config(materialized='view') }}
{%- set rules = detection_rules() -%}

with

detections as (
    select * from {{ ref('stg_pipeline__detections') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

latest_boxes as (
    select * from {{ ref('int_detections_latest_version') }}
),

counted_by_threshold as (
    select * from {{ ref('int_detections_filtered_to_threshold') }}
),

reviews as (
    select * from {{ ref('int_human_labels') }}
),

classifications as (
    select * from {{ ref('stg_pipeline__classifications') }}
),

repeat_flags as (
    select distinct detection_id
    from {{ ref('stg_pipeline__detection_flags') }}
    where flag = 'repeat_detection'
),

thresholds as (
    select
        category,
        min_confidence
    from (
        values
        {%- for rule in rules %}
            ('{{ rule.category }}', cast({{ rule.min_confidence }} as double))
            {{- "," if not loop.last }}
        {%- endfor %}
    ) as rules (category, min_confidence)
),

box_reviews as (
    {{ latest_reviews('reviews', 'box') }}
),

image_verdicts as (
    select media_id, is_false_positive
    from ({{ latest_reviews('reviews', 'image') }})
),

person_cue as (
    {{ person_cue_boxes('latest_boxes') }}
),

candidates as (
    {{ detection_candidates('detections', 'counted_by_threshold', 'person_cue', 'box_reviews') }}
),

top_classes as (
    {{ top_classifications('classifications') }}
),

joined as (
    select
        detections.*,
        media.site_id,
        media.camera_id,
        media.media_type,
        media.captured_on,
        media.captured_at,
        thresholds.min_confidence,
        candidates.evidence,
        top_classes.model_name as classifier_model,
        top_classes.label as classifier_label,
        top_classes.probability as classifier_probability,
        box_reviews.label_id is not null as is_reviewed,
        box_reviews.category as review_category,
        box_reviews.label as review_label,
        box_reviews.reviewed_at,
        {{ label_source(
            'detections.category', 'box_reviews.label',
            'top_classes.probability', 'top_classes.is_rolled_up'
        ) }} as label_source,
        candidates.detection_id is not null as is_candidate,
        coalesce(box_reviews.is_false_positive, false)
        or coalesce(image_verdicts.is_false_positive, false) as is_false_positive,
        repeat_flags.detection_id is not null as is_repeat_detection
    from detections
    inner join media
        on detections.media_id = media.media_id
    left join thresholds
        on detections.category = thresholds.category
    left join candidates
        on detections.detection_id = candidates.detection_id
    left join top_classes
        on detections.detection_id = top_classes.detection_id
    left join box_reviews
        on detections.detection_id = box_reviews.detection_id
    left join image_verdicts
        on detections.media_id = image_verdicts.media_id
    left join repeat_flags
        on detections.detection_id = repeat_flags.detection_id
),

resolved as (
    select
        *,
        case label_source
            when 'review' then review_label
            when 'classifier' then classifier_label
            else label
        end as resolved_label,
        coalesce(nullif(review_category, 'blank'), category) as resolved_category,
        coalesce(confidence >= min_confidence, false) as is_above_threshold
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

        ----------  what was found, and what it is now
        cast(category as varchar) as detector_category,
        cast(label as varchar) as detector_label,
        cast(resolved_category as varchar) as category,
        cast(resolved_label as varchar) as label,
        cast(label_source as varchar) as label_source,
        cast(evidence as varchar) as evidence,
        cast(confidence as double) as confidence,
        cast(min_confidence as double) as min_confidence,
        cast(classifier_model as varchar) as classifier_model,
        cast(classifier_label as varchar) as classifier_label,
        cast(classifier_probability as double) as classifier_probability,

        ----------  box, normalised [x_min, y_min, width, height]
        cast(bbox_x as double) as bbox_x,
        cast(bbox_y as double) as bbox_y,
        cast(bbox_w as double) as bbox_w,
        cast(bbox_h as double) as bbox_h,

        ----------  video clips (null for stills)
        cast(frame_number as integer) as frame_number,
        cast(frame_time_s as double) as frame_time_s,

        ----------  booleans
        cast(media_type = 'video' as boolean) as is_video,
        cast(is_candidate as boolean) as is_candidate,
        cast(
            is_candidate and not is_false_positive and not is_repeat_detection as boolean
        ) as is_counted,
        cast(is_above_threshold as boolean) as is_above_threshold,
        cast(
            not is_false_positive and (is_candidate or is_above_threshold) as boolean
        ) as is_recorded,
        cast(is_false_positive as boolean) as is_false_positive,
        cast(is_repeat_detection as boolean) as is_repeat_detection,
        cast(is_reviewed as boolean) as is_reviewed,
        cast({{ is_sensitive_label('resolved_label') }} as boolean) as is_sensitive,

        ----------  dates and timestamps (captured_*: camera-local; the rest UTC)
        cast(captured_on as date) as captured_on,
        cast(captured_at as timestamp) as captured_at,
        cast(detected_at as timestamp) as detected_at,
        cast(reviewed_at as timestamp) as reviewed_at
    from resolved
)

select * from final
