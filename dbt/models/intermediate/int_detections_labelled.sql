{#- One row per box that is a candidate for counting, with its resolved label and whether it
    counts. Candidates: the counting detectors' boxes at or above threshold (latest model
    version: the rules of int_detections_filtered_to_threshold), the person-cue model's
    person boxes at or above the person threshold, and any box a reviewer confirmed (whatever
    its confidence).

    Label: review.labels (latest per detection) > top-1 classification with probability >=
    classification_threshold and not geofence-rolled-up (animals only) > the detector's label.
    The candidate and label rules are the macros of macros/detection_candidates.sql, which
    marts.live_detections (the same verdicts, live) uses too.
    Not counted: boxes a reviewer marked false positive (the box, or its whole image, or the
    image 'blank'), and boxes flagged 'repeat_detection'.

    Incremental by media: a media is rebuilt when anything about it changed (its row, its boxes,
    classifications, flags, reviews) or when the counting vars changed (media_state); the
    changed media are computed once, in the pre-hook, against the states of the last build
    (<model>__state, which the post-hook keeps; macros/incremental_media.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{% if is_incremental() %}{{ changed_media_prepare() }}{% endif %}",
    post_hook="{{ changed_media_finish() }}",
) }}

with

changed_media as (
    {#- media_id, media_state of the media to label (all of them on a full build) -#}
    {%- if is_incremental() %}
    select * from {{ changed_media_relation() }}
    {%- else %}
    {{ changed_media_sql(none) }}
    {%- endif %}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
    where media_id in (select media_id from changed_media)
),

detections as (
    select * from {{ ref('stg_pipeline__detections') }}
    where media_id in (select media_id from changed_media)
),

latest_boxes as (
    {#- the rules of int_detections_latest_version and int_detections_filtered_to_threshold
        (macros/latest_version.sql), on the changed media's boxes only: a filter on those
        views would still rank every box -#}
    {{ latest_version_boxes('detections') }}
),

counted_by_threshold as (
    {{ boxes_at_threshold('latest_boxes', 'media') }}
),

reviews as (
    select * from {{ ref('int_human_labels') }}
    where media_id in (select media_id from changed_media)
),

classifications as (
    select * from {{ ref('stg_pipeline__classifications') }}
    where media_id in (select media_id from changed_media)
),

flags as (
    select * from {{ ref('stg_pipeline__detection_flags') }}
    where flag = 'repeat_detection'
),

detection_reviews as (
    {{ latest_reviews('reviews', 'box') }}
),

image_verdicts as (
    {#- the latest image-level row decides whether the whole image is a false positive -#}
    select media_id, is_false_positive
    from ({{ latest_reviews('reviews', 'image') }})
),

person_cue as (
    {{ person_cue_boxes('latest_boxes') }}
),

candidates as (
    {{ detection_candidates('detections', 'counted_by_threshold', 'person_cue', 'detection_reviews') }}
),

top_classifications as (
    {{ top_classifications('classifications') }}
),

labelled as (
    select
        candidates.*,
        media.site_id,
        media.camera_id,
        media.captured_at,
        media.captured_on,
        top_classifications.label as classifier_label,
        top_classifications.probability as classifier_probability,
        detection_reviews.label as review_label,
        coalesce(detection_reviews.category, candidates.category) as resolved_category,
        {{ label_source(
            'candidates.category', 'detection_reviews.label',
            'top_classifications.probability', 'top_classifications.is_rolled_up'
        ) }} as label_source,
        detection_reviews.is_false_positive as is_reviewed_false_positive,
        image_verdicts.is_false_positive as is_image_false_positive,
        candidates.detection_id in (select detection_id from flags) as is_repeat_detection
    from candidates
    inner join media
        on candidates.media_id = media.media_id
    left join top_classifications
        on candidates.detection_id = top_classifications.detection_id
    left join detection_reviews
        on candidates.detection_id = detection_reviews.detection_id
    left join image_verdicts
        on candidates.media_id = image_verdicts.media_id
),

final as (
    select
        ----------  ids
        labelled.detection_id,
        labelled.media_id,
        labelled.site_id,
        labelled.camera_id,

        ----------  what was found
        labelled.model_name,
        labelled.evidence,
        case when labelled.resolved_category = 'blank' then labelled.category
            else labelled.resolved_category end as category,
        case labelled.label_source
            when 'review' then labelled.review_label
            when 'classifier' then labelled.classifier_label
            else labelled.detector_label
        end as label,
        labelled.label_source,
        labelled.detector_label,
        labelled.classifier_label,
        labelled.classifier_probability,
        labelled.confidence,

        ----------  booleans
        not (
            coalesce(labelled.is_reviewed_false_positive, false)
            or coalesce(labelled.is_image_false_positive, false)
            or labelled.is_repeat_detection
        ) as is_counted,
        coalesce(labelled.is_reviewed_false_positive, false)
        or coalesce(labelled.is_image_false_positive, false) as is_false_positive,
        labelled.is_repeat_detection,

        ----------  dates and timestamps (camera-local)
        labelled.captured_on,
        labelled.captured_at,

        ----------  incremental bookkeeping
        changed_media.media_state
    from labelled
    inner join changed_media
        on labelled.media_id = changed_media.media_id
)

select * from final
