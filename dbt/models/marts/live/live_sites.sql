{#- One row per site (every site of stg_pipeline__media) and whether it is sensitive now: a
    label that names a sensitive taxon (var sensitive_species) was ever recorded there
    (marts.live_site_labels: boxes that is_recorded, latest whole-image reviews). Site-level
    on purpose: cameras of one site are close together, so a person seen at any of them tells
    where the rhinos are. A VIEW: current between builds, like the boxes. -#}
{{ config(materialized='view') }}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

site_labels as (
    select * from {{ ref('live_site_labels') }}
),

sites as (
    select distinct site_id
    from media
    where site_id is not null
),

sensitive as (
    select
        site_id,
        min(first_recorded_at) as first_sensitive_at
    from site_labels
    where is_sensitive
    group by site_id
),

final as (
    select
        ----------  ids
        cast(sites.site_id as varchar) as site_id,

        ----------  booleans
        cast(sensitive.site_id is not null as boolean) as is_sensitive,

        ----------  the grid (km) the coordinates of a sensitive site are generalised to
        cast({{ var('sensitive_grid_km') }} as double) as sensitive_grid_km,

        ----------  timestamps (camera-local)
        cast(sensitive.first_sensitive_at as timestamp) as first_sensitive_at
    from sites
    left join sensitive
        on sites.site_id = sensitive.site_id
)

select * from final
