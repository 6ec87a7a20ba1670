{#- int_media_deployed stored for the build: every dated media in its deployment, with the
    corrected time (the rule is int_media_deployed's; this is its copy, so the marts and the
    effort read one table instead of the view chain over every photo each).
    int_media_deployed stays a view for marts.live_media (current between builds).

    Incremental by media (macros/incremental_placement.sql): a stored row changes only with the
    station tables or the clock shifts (every row keeps station_tables_state(), and a build
    whose state differs rebuilds them all); otherwise only media not stored yet are placed
    (an inferred deployment spans all of its camera's photos, so a new photo never moves an
    old one out of it or into another). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}{{ placement_prepare() }}{% endif %}",
) }}

with

placed as (
    select * from {{ ref('int_media_deployed') }}
    {%- if is_incremental() %}
    where media_id not in (select media_id from {{ this }})
    {%- endif %}
),

final as (
    select
        *,
        {{ station_tables_state() }} as placement_state
    from placed
)

select * from final
