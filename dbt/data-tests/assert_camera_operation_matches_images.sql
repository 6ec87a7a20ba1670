-- No day is inferred down (no images) on which the camera took an image that sits in a
-- deployment, and the site's trap-nights in fct_daily_population equal the summed effort of
-- fct_camera_operation.

with

operation as (
    select * from {{ ref('fct_camera_operation') }}
),

image_days as (
    select distinct
        deployment_id,
        captured_on
    from {{ ref('int_media_deployed') }}
),

down_on_image_days as (
    select
        operation.site_id,
        operation.camera_id,
        operation.day,
        'inferred down on a day with images' as problem
    from image_days
    inner join operation
        on image_days.deployment_id = operation.deployment_id
        and image_days.captured_on = operation.day
    where operation.is_downtime_inferred
),

site_effort as (
    select
        site_id,
        day,
        nullif(sum(effort), 0) as trap_nights
    from operation
    group by site_id, day
),

effort_mismatch as (
    select distinct
        population.site_id,
        cast(null as varchar) as camera_id,
        population.captured_on as day,
        'trap_nights differ from camera operation' as problem
    from {{ ref('fct_daily_population') }} as population
    left join site_effort
        on population.site_id = site_effort.site_id
        and population.captured_on = site_effort.day
    where abs(coalesce(population.trap_nights, -1) - coalesce(site_effort.trap_nights, -1)) > 1e-9
)

select * from down_on_image_days
union all
select * from effort_mismatch
