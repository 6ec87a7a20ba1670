{#- The counting rules past the thresholds, written once for the built marts
    (int_detections_labelled, incremental) and the live views (marts.live_detections):
    which boxes are candidates for counting, which classification a box has, where its label
    comes from, and whether a label names a sensitive taxon. Each macro takes the names of
    CTEs the caller has defined, so a model can narrow them first (by changed media). -#}

{#- The person-cue model's person boxes at or above the person threshold (``latest_boxes``:
    int_detections_latest_version rows, so only the latest version of that model run on each
    media). -#}
{% macro person_cue_boxes(latest_boxes) -%}
    {%- set s = population_settings() -%}
    {%- set thresholds = var('detection_thresholds') -%}
    select {{ latest_boxes }}.*
    from {{ latest_boxes }}
    where
        {{ latest_boxes }}.model_name = '{{ s.person_cue_detector | replace("'", "''") }}'
        and {{ latest_boxes }}.category = 'person'
        and {{ latest_boxes }}.confidence >= cast({{ thresholds['person'] }} as double)
{%- endmacro %}

{#- One row per candidate box with its evidence: the counting detectors' boxes at or above
    threshold (``counted_by_threshold``: int_detections_filtered_to_threshold rows), the
    person-cue model's person boxes (``person_cue``: person_cue_boxes rows), and any box the
    latest review confirmed (``box_reviews``: latest_reviews(..., 'box') rows), whatever its
    confidence. -#}
{% macro detection_candidates(detections, counted_by_threshold, person_cue, box_reviews) -%}
    select
        detection_id,
        media_id,
        model_name,
        category,
        label as detector_label,
        confidence,
        'detector' as evidence
    from {{ counted_by_threshold }}

    union all

    select
        detection_id,
        media_id,
        model_name,
        category,
        label as detector_label,
        confidence,
        'person_cue' as evidence
    from {{ person_cue }}

    union all

    select
        {{ detections }}.detection_id,
        {{ detections }}.media_id,
        {{ detections }}.model_name,
        {{ detections }}.category,
        {{ detections }}.label as detector_label,
        {{ detections }}.confidence,
        'review' as evidence
    from {{ detections }}
    inner join {{ box_reviews }}
        on {{ detections }}.detection_id = {{ box_reviews }}.detection_id
    where
        not {{ box_reviews }}.is_false_positive
        and {{ detections }}.detection_id not in (select detection_id from {{ counted_by_threshold }})
        and {{ detections }}.detection_id not in (select detection_id from {{ person_cue }})
{%- endmacro %}

{#- Each box's top-1 classification (the latest classifier run on it). -#}
{% macro top_classifications(classifications) -%}
    select
        detection_id,
        model_name,
        label,
        probability,
        is_rolled_up
    from {{ classifications }}
    where label_rank = 1
    qualify row_number() over (
        partition by detection_id order by classified_at desc, probability desc, model_name
    ) = 1
{%- endmacro %}

{#- Where a box's label comes from: the latest review of the box > its top-1 classification
    (animals only, probability >= classification_threshold, not rolled up by the geofence) >
    the detector's label. Arguments are SQL expressions. -#}
{% macro label_source(category, review_label, classifier_probability, is_rolled_up) -%}
    {%- set s = population_settings() -%}
    case
        when {{ review_label }} is not null then 'review'
        when
            {{ category }} = 'animal'
            and {{ classifier_probability }}
            >= cast({{ s.classification_threshold }} as double)
            and not {{ is_rolled_up }}
            then 'classifier'
        else 'detector'
    end
{%- endmacro %}

{#- Whether the SQL expression ``label`` names a sensitive taxon: it contains one of the words
    of the var sensitive_species (case-insensitive). -#}
{% macro is_sensitive_label(label) -%}
    {%- set words = var('sensitive_species') -%}
    {%- if words is string -%}{%- set words = [words] -%}{%- endif -%}
    {%- set words = words | reject('none') | map('string') | map('trim') | reject('equalto', '')
        | list -%}
    {%- if words -%}
    coalesce(
        {%- for word in words %}
        contains(lower({{ label }}), '{{ word | lower | replace("'", "''") }}'){{ " or" if not loop.last }}
        {%- endfor %}, false)
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}
