{#- The counting rules from the project vars, one per MegaDetector category:
    which model's boxes count for it and the minimum confidence. Fails the compile on a
    missing category or a threshold outside [0, 1], so a bad --vars never builds quietly. -#}
{% macro detection_rules() -%}
    {%- set thresholds = var('detection_thresholds') -%}
    {%- set detector_for = {
        'animal': var('animal_detector'),
        'person': var('person_vehicle_detector'),
        'vehicle': var('person_vehicle_detector'),
    } -%}
    {%- if thresholds is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var detection_thresholds must be a mapping of animal, person and vehicle "
            ~ "to a confidence in [0, 1]; got " ~ thresholds
        ) }}
    {%- endif -%}
    {%- set rules = [] -%}
    {%- for category, model_name in detector_for.items() -%}
        {%- if category not in thresholds -%}
            {{ exceptions.raise_compiler_error(
                "var detection_thresholds has no threshold for '" ~ category
                ~ "' (give all of animal, person, vehicle); got " ~ thresholds
            ) }}
        {%- endif -%}
        {%- set min_confidence = thresholds[category] -%}
        {%- if min_confidence is not number
            or min_confidence is sameas true or min_confidence is sameas false
            or min_confidence < 0 or min_confidence > 1 -%}
            {{ exceptions.raise_compiler_error(
                "var detection_thresholds." ~ category
                ~ " must be a number in [0, 1]; got " ~ min_confidence
            ) }}
        {%- endif -%}
        {%- do rules.append({
            'category': category,
            'model_name': model_name | string,
            'min_confidence': min_confidence,
        }) -%}
    {%- endfor -%}
    {{ return(rules) }}
{%- endmacro %}


{#- The counting rules as a relation (category, model_name, min_confidence): one row per
    MegaDetector category, for the models that join boxes to them. -#}
{% macro detection_rules_relation() -%}
    select
        category,
        model_name,
        min_confidence
    from (
        values
        {%- for rule in detection_rules() %}
            (
                '{{ rule.category }}',
                '{{ rule.model_name | replace("'", "''") }}',
                cast({{ rule.min_confidence }} as double)
            ){{ "," if not loop.last }}
        {%- endfor %}
    ) as rules (category, model_name, min_confidence)
{%- endmacro %}
