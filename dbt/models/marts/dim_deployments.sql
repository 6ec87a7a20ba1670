{#- One row per deployment: from deployments.csv, or inferred from a camera's images. -#}

with

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

operation as (
    select
        deployment_id,
        count(*) as deployed_days,
        count(effort) filter (where effort > 0) as operational_days,
        sum(effort) as trap_nights
    from {{ ref('int_camera_operation_daily') }}
    where deployment_id is not null
    group by deployment_id
),

problems as (
    select deployment_id, count(*) as problem_periods
    from {{ ref('int_deployment_problems') }}
    group by deployment_id
),

placed as (
    select
        deployment_id,
        count(*) as images
    from {{ ref('int_media_placed') }}
    group by deployment_id
)

select
    cast(deployments.deployment_id as varchar) as deployment_id,
    cast(deployments.site_id as varchar) as site_id,
    cast(deployments.camera_id as varchar) as camera_id,
    cast(deployments.session_id as varchar) as session_id,
    cast(deployments.deployment_start as timestamp) as deployment_start,
    cast(deployments.deployment_end as timestamp) as deployment_end,
    cast(deployments.effort_start as timestamp) as effort_start,
    cast(deployments.effort_end as timestamp) as effort_end,
    cast(deployments.latitude as double) as latitude,
    cast(deployments.longitude as double) as longitude,
    cast(deployments.utc_offset as varchar) as utc_offset,
    cast(deployments.timezone as varchar) as timezone,
    cast(deployments.clock_offset_s as double) as clock_offset_s,
    cast(deployments.is_inferred as boolean) as is_inferred,
    cast(coalesce(placed.images, 0) as bigint) as images,
    cast(coalesce(operation.deployed_days, 0) as bigint) as deployed_days,
    cast(coalesce(operation.operational_days, 0) as bigint) as operational_days,
    cast(coalesce(operation.trap_nights, 0) as double) as trap_nights,
    cast(coalesce(problems.problem_periods, 0) as bigint) as problem_periods
from deployments
left join operation
    on deployments.deployment_id = operation.deployment_id
left join placed
    on deployments.deployment_id = placed.deployment_id
left join problems
    on deployments.deployment_id = problems.deployment_id
