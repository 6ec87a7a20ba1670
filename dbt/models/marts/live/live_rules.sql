{#- The counting rules the live views were created with: one row per MegaDetector category
    (detection_rules: the detector whose boxes count, the minimum confidence) and, on every
    row, the vars the live views depend on as JSON. trapflow compares vars_json with its
    settings before it evaluates alerts, and re-creates the live views (dbt run --select
    +marts.live) when they differ or do not exist yet. -#}
{{ config(materialized='view') }}
{%- set live_vars = {} -%}
{%- for name in [
    'detection_thresholds', 'animal_detector', 'person_vehicle_detector', 'person_cue_detector',
    'classification_threshold', 'sensitive_species', 'sensitive_grid_km',
    'silent_camera_gap_quantile', 'silent_camera_gap_factor', 'silent_camera_min_hours',
    'silent_camera_min_gaps',
] -%}
    {%- do live_vars.update({name: var(name)}) -%}
{%- endfor %}

with

rules as (
    {{ detection_rules_relation() }}
),

final as (
    select
        cast(category as varchar) as category,
        cast(model_name as varchar) as model_name,
        cast(min_confidence as double) as min_confidence,
        cast('{{ tojson(live_vars) | replace("'", "''") }}' as varchar) as vars_json
    from rules
)

select * from final
