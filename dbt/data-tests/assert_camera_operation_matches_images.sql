-- A camera is working (1) on every day it took an image that sits in a deployment, and the
-- site's trap-nights in fct_daily_population equal the working cameras of fct_camera_operation.

with

operation as (
    select * from {{ ref('fct_camera_operation') }}
),

image_days as (
    select distinct
        site_id,
        camera_id,
        captured_on
    from {{ ref('int_media_deployed') }}
),

not_working_on_image_days as (
    select
        image_days.site_id,
        image_days.camera_id,
        image_days.captured_on as day,
        'image on a day not marked working' as problem
    from image_days
    left join operation
        on image_days.site_id = operation.site_id
        and image_days.camera_id = operation.camera_id
        and image_days.captured_on = operation.day
    where operation.is_operational is distinct from 1
),

site_effort as (
    select
        site_id,
        day,
        nullif(sum(is_operational), 0) as trap_nights
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
    where population.trap_nights is distinct from site_effort.trap_nights
)

select * from not_working_on_image_days
union all
select * from effort_mismatch
