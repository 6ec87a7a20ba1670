{#- Which boxes count, in two steps written once and shared by the views
    (int_detections_latest_version, int_detections_filtered_to_threshold, so the MegaDetector
    JSON export and the live views read them) and int_detections_labelled, which applies them
    to the boxes of its changed media only: a filter on the views' media cannot reach below
    their window and group-by, so filtering them after the fact still ranks every box. -#}

{#- Every box of the latest version of each model run on each media (``detections``: a CTE
    of stg_pipeline__detections rows): a model run again with a newer version replaces its
    earlier boxes, whatever their category or confidence. The latest version is the one whose
    boxes were stored last (ties: the higher version string). -#}
{% macro latest_version_boxes(detections) -%}
    select {{ detections }}.*
    from {{ detections }}
    inner join (
        select
            media_id,
            model_name,
            model_version
        from (
            select
                media_id,
                model_name,
                model_version,
                max(detected_at) as last_detected_at
            from {{ detections }}
            group by media_id, model_name, model_version
        )
        qualify row_number() over (
            partition by media_id, model_name
            order by last_detected_at desc, model_version desc
        ) = 1
    ) as latest_model_versions
        on
            {{ detections }}.media_id = latest_model_versions.media_id
            and {{ detections }}.model_name = latest_model_versions.model_name
            and {{ detections }}.model_version = latest_model_versions.model_version
{%- endmacro %}

{#- The boxes that count by detector and threshold (``latest_boxes``: latest_version_boxes
    rows; ``media``: a CTE of stg_pipeline__media rows): for each category only the model the
    vars choose (animal_detector, person_vehicle_detector), at or above the category's
    threshold (detection_thresholds), with the media's site, camera and local date. -#}
{% macro boxes_at_threshold(latest_boxes, media) -%}
    select
        ----------  ids
        counted.detection_id,
        counted.media_id,
        {{ media }}.site_id,
        {{ media }}.camera_id,
        counted.run_id,

        ----------  model
        counted.model_name,
        counted.model_version,
        counted.model_ref,

        ----------  what was found
        counted.category,
        counted.category_id,
        counted.label,
        counted.confidence,
        counted.min_confidence,

        ----------  box
        counted.bbox_x,
        counted.bbox_y,
        counted.bbox_w,
        counted.bbox_h,
        counted.bbox_area,
        counted.frame_number,

        ----------  dates (camera-local)
        {{ media }}.captured_on,

        ----------  timestamps
        {{ media }}.captured_at,
        counted.detected_at

    from (
        select
            {{ latest_boxes }}.*,
            detection_rules.min_confidence
        from {{ latest_boxes }}
        inner join ({{ detection_rules_relation() }}) as detection_rules
            on
                {{ latest_boxes }}.category = detection_rules.category
                and {{ latest_boxes }}.model_name = detection_rules.model_name
        where {{ latest_boxes }}.confidence >= detection_rules.min_confidence
    ) as counted
    inner join {{ media }}
        on counted.media_id = {{ media }}.media_id
{%- endmacro %}
