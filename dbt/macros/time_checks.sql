{#- The clock checks' vars (fct_time_problems), checked like population_settings: a bad --vars
    fails the compile with a message naming the var. Defaults: dbt_project.yml only. -#}
{% macro time_check_settings() -%}
    {%- set values = {} -%}
    {%- for name, low, high in [
        ('time_check_tolerance_minutes', 0, none),
        ('time_check_min_photos', 0, none),
        ('time_check_min_share', 0, 1),
        ('day_night_sun_degrees', -1, 30),
    ] -%}
        {%- set value = var(name) -%}
        {%- if value is not number or value is sameas true or value is sameas false
            or value <= low or (high is not none and value > high) -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " must be a number "
                ~ ("> " ~ low if low >= 0 else ">= 0")
                ~ (" and <= " ~ high if high is not none else "") ~ "; got " ~ value
            ) }}
        {%- endif -%}
        {%- do values.update({name: value}) -%}
    {%- endfor -%}
    {%- do values.update({'tolerance_s': values['time_check_tolerance_minutes'] * 60}) -%}
    {{ return(values) }}
{%- endmacro %}
