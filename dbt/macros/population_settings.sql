{#- The population vars, checked: a bad --vars fails the compile with a message naming the var,
    never a quiet build with nonsense. Returns a dict. The defaults are dbt_project.yml's only
    (no second default here: trapflow passes every var, Settings.dbt_vars). -#}
{% macro population_settings() -%}
    {%- set mode = var('independence_mode') -%}
    {%- if mode not in ['last_independent', 'last_record'] -%}
        {{ exceptions.raise_compiler_error(
            "var independence_mode must be 'last_independent' or 'last_record'; got " ~ mode
        ) }}
    {%- endif -%}
    {%- set period = var('trend_period') -%}
    {%- if period not in ['week', 'month'] -%}
        {{ exceptions.raise_compiler_error(
            "var trend_period must be 'week' or 'month'; got " ~ period
        ) }}
    {%- endif -%}
    {%- set listed_gaps = var('listed_downtime_from_gaps') -%}
    {%- if listed_gaps is not sameas true and listed_gaps is not sameas false -%}
        {{ exceptions.raise_compiler_error(
            "var listed_downtime_from_gaps must be true or false; got " ~ listed_gaps
        ) }}
    {%- endif -%}
    {%- set numbers = checked_numbers([
        ('independence_minutes', 0, none),
        ('camera_down_gap_days', 0, none),
        ('min_effort_trap_nights', -1, none),
        ('classification_threshold', -1, 1),
        ('trend_alpha', 0, 1),
    ]) -%}
    {%- do numbers.update({
        'independence_mode': mode,
        'listed_downtime_from_gaps': listed_gaps,
        'trend_period': period,
        'person_cue_detector': (var('person_cue_detector') or '') | string,
        'independence_us': (numbers['independence_minutes'] * 60000000) | round | int,
        'down_gap_us': (numbers['camera_down_gap_days'] * 86400000000) | round | int,
    }) -%}
    {{ return(numbers) }}
{%- endmacro %}

{#- A string that changes whenever a var that decides which boxes count and how they are
    labelled changes: stored with the incremental rows, so a change rebuilds them all. -#}
{% macro counting_rules_fingerprint() -%}
    {%- set parts = [] -%}
    {%- for rule in detection_rules() -%}
        {%- do parts.append(rule.category ~ ':' ~ rule.model_name ~ '>=' ~ rule.min_confidence) -%}
    {%- endfor -%}
    {%- set s = population_settings() -%}
    {%- do parts.append('cue:' ~ s.person_cue_detector) -%}
    {%- do parts.append('cls>=' ~ s.classification_threshold) -%}
    {{ return(parts | join(';') | replace("'", "''")) }}
{%- endmacro %}

{#- A fingerprint of what the station tables say (deployments, problem periods, clock shifts):
    marts_build keeps the one its build saw, marts_freshness compares it with now, so a changed
    problem period says "stale" until the marts are rebuilt. -#}
{% macro station_tables_state() -%}
    (select md5(coalesce(string_agg(row_text, '|' order by row_text), '')) from (
        select concat_ws(',', 'd', deployment_id, site_id, camera_id, deployment_start,
            deployment_end, start_is_date, end_is_date, latitude, longitude, timezone,
            utc_offset, clock_offset_s) as row_text
        from {{ ref('stg_pipeline__deployments') }}
        union all
        select concat_ws(',', 'p', deployment_id, problem_number, problem_from, problem_to)
        from {{ ref('stg_pipeline__deployment_problems') }}
        union all
        select concat_ws(',', 's', site_id, camera_id, shift_months, shift_days, shift_micros)
        from {{ ref('int_clock_shifts') }}
    ))
{%- endmacro %}

{#- Vars that must be numbers in a range: [(name, low, high)], low exclusive (-1: >= 0), high
    inclusive or none. A bad one fails the compile naming it. Returns {name: value}; every
    group of vars (population_settings, time_check_settings) checks its numbers here. -#}
{% macro checked_numbers(specs) -%}
    {%- set numbers = {} -%}
    {%- for name, low, high in specs -%}
        {%- set value = var(name) -%}
        {%- if value is not number or value is sameas true or value is sameas false
            or value <= low or (high is not none and value > high) -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " must be a number "
                ~ ("> " ~ low if low >= 0 else ">= 0")
                ~ (" and <= " ~ high if high is not none else "") ~ "; got " ~ value
            ) }}
        {%- endif -%}
        {%- do numbers.update({name: value}) -%}
    {%- endfor -%}
    {{ return(numbers) }}
{%- endmacro %}
