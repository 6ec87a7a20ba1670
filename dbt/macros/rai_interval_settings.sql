{#- The RAI-interval vars, checked (a bad --vars fails with a message naming the var). Returns
    a dict; the defaults are dbt_project.yml's only (trapflow passes every var). -#}
{% macro rai_interval_settings() -%}
    {%- set level = var('confidence_level') -%}
    {%- if level is not number or level is sameas true or level is sameas false
        or level <= 0 or level >= 1 -%}
        {{ exceptions.raise_compiler_error(
            "var confidence_level must be a number > 0 and < 1; got " ~ level) }}
    {%- endif -%}
    {%- for name, low in [('bootstrap_replicates', 1), ('bootstrap_seed', 0)] -%}
        {%- set value = var(name) -%}
        {%- if value is not integer or value is sameas true or value is sameas false
            or value < low -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " must be a whole number >= " ~ low ~ "; got " ~ value) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set unit = var('bootstrap_unit') -%}
    {%- if unit not in ['camera_day', 'deployment'] -%}
        {{ exceptions.raise_compiler_error(
            "var bootstrap_unit must be 'camera_day' or 'deployment'; got " ~ unit) }}
    {%- endif -%}
    {{ return({
        'confidence_level': level,
        'bootstrap_replicates': var('bootstrap_replicates'),
        'bootstrap_seed': var('bootstrap_seed'),
        'bootstrap_unit': unit,
    }) }}
{%- endmacro %}

