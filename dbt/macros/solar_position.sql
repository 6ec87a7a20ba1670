{#- The sun's elevation in degrees above the horizon (no refraction) at a UTC timestamp and a
    place: NOAA's solar position algorithm (the NOAA Solar Calculator spreadsheet: Julian
    century, the sun's mean longitude and anomaly, equation of centre, apparent longitude,
    corrected obliquity -> declination; equation of time; true solar time -> hour angle).
    Accurate to about 0.01 degree for 1800-2100 away from the poles' extremes.
    utc_ts: a timestamp expression in UTC; lat, lon: signed decimal degrees (east positive). -#}
{% macro solar_elevation(utc_ts, lat, lon) -%}
    {%- set jd -%} (epoch({{ utc_ts }}) / 86400.0 + 2440587.5) {%- endset -%}
    {%- set jc -%} (({{ jd }} - 2451545.0) / 36525.0) {%- endset -%}
    {%- set l0 -%} ((280.46646 + {{ jc }} * (36000.76983 + {{ jc }} * 0.0003032)) % 360) {%- endset -%}
    {%- set m -%} (357.52911 + {{ jc }} * (35999.05029 - 0.0001537 * {{ jc }})) {%- endset -%}
    {%- set e -%} (0.016708634 - {{ jc }} * (0.000042037 + 0.0000001267 * {{ jc }})) {%- endset -%}
    {%- set c -%} (
        sin(radians({{ m }})) * (1.914602 - {{ jc }} * (0.004817 + 0.000014 * {{ jc }}))
        + sin(radians(2 * {{ m }})) * (0.019993 - 0.000101 * {{ jc }})
        + sin(radians(3 * {{ m }})) * 0.000289
    ) {%- endset -%}
    {%- set omega -%} radians(125.04 - 1934.136 * {{ jc }}) {%- endset -%}
    {%- set app_long -%} ({{ l0 }} + {{ c }} - 0.00569 - 0.00478 * sin({{ omega }})) {%- endset -%}
    {%- set obliq -%} (
        23 + (26 + (21.448 - {{ jc }} * (46.815 + {{ jc }} * (0.00059 - {{ jc }} * 0.001813))) / 60)
        / 60 + 0.00256 * cos({{ omega }})
    ) {%- endset -%}
    {%- set decl -%} asin(sin(radians({{ obliq }})) * sin(radians({{ app_long }}))) {%- endset -%}
    {%- set y -%} pow(tan(radians({{ obliq }}) / 2), 2) {%- endset -%}
    {%- set eqtime -%} (4 * degrees(
        {{ y }} * sin(2 * radians({{ l0 }}))
        - 2 * {{ e }} * sin(radians({{ m }}))
        + 4 * {{ e }} * {{ y }} * sin(radians({{ m }})) * cos(2 * radians({{ l0 }}))
        - 0.5 * {{ y }} * {{ y }} * sin(4 * radians({{ l0 }}))
        - 1.25 * {{ e }} * {{ e }} * sin(2 * radians({{ m }}))
    )) {%- endset -%}
    {%- set minutes -%} ((epoch({{ utc_ts }}) % 86400) / 60.0) {%- endset -%}
    {%- set hour_angle -%} radians({{ minutes }} + {{ eqtime }} + 4 * ({{ lon }})) / 4 - pi() {%- endset -%}
    (90 - degrees(acos(least(1.0, greatest(-1.0,
        sin(radians({{ lat }})) * sin({{ decl }})
        + cos(radians({{ lat }})) * cos({{ decl }}) * cos({{ hour_angle }})
    )))))
{%- endmacro %}
