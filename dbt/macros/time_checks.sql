{#- The clock checks' vars (fct_time_problems), checked like population_settings: a bad --vars
    fails the compile with a message naming the var. Defaults: dbt_project.yml only. -#}
{% macro time_check_settings() -%}
    {%- set values = checked_numbers([
        ('time_check_tolerance_minutes', 0, none),
        ('time_check_min_photos', 0, none),
        ('time_check_min_share', 0, 1),
        ('day_night_sun_degrees', -1, 30),
    ]) -%}
    {%- do values.update({'tolerance_s': values['time_check_tolerance_minutes'] * 60}) -%}
    {{ return(values) }}
{%- endmacro %}
