-- The two marts count the same individuals: per site and category, the detections in
-- fct_daily_population equal the n_* of the media in dim_media that sit in a deployment.

with

daily_population as (
    select * from {{ ref('fct_daily_population') }}
),

media as (
    select * from {{ ref('dim_media') }}
),

population_totals as (
    select
        site_id,
        category,
        sum(detections) as detections
    from daily_population
    group by site_id, category
),

deployed_media as (
    select * from media
    where deployment_id is not null
),

media_totals as (
    select
        site_id,
        'animal' as category,
        sum(n_animals) as detections
    from deployed_media
    group by site_id

    union all

    select
        site_id,
        'person' as category,
        sum(n_persons) as detections
    from deployed_media
    group by site_id

    union all

    select
        site_id,
        'vehicle' as category,
        sum(n_vehicles) as detections
    from deployed_media
    group by site_id
),

mismatched as (
    select
        coalesce(population_totals.site_id, media_totals.site_id) as site_id,
        coalesce(population_totals.category, media_totals.category) as category,
        population_totals.detections as population_detections,
        media_totals.detections as media_detections
    from population_totals
    full outer join media_totals
        on
            population_totals.site_id = media_totals.site_id
            and population_totals.category = media_totals.category
    where coalesce(population_totals.detections, 0) != coalesce(media_totals.detections, 0)
)

select * from mismatched
