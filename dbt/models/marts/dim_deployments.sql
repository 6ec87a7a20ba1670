{#- One row per deployment: from deployments.csv, or inferred from a camera's images. -#}

with

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

operation as (
    select
        deployment_id,
        count(*) as deployed_days,
        sum(is_operational) as trap_nights
    from {{ ref('int_camera_operation_daily') }}
    where deployment_id is not null
    group by deployment_id
),

placed as (
    select
        deployment_id,
        count(*) as images
    from {{ ref('int_media_deployed') }}
    group by deployment_id
)

select
    cast(deployments.deployment_id as varchar) as deployment_id,
    cast(deployments.site_id as varchar) as site_id,
    cast(deployments.camera_id as varchar) as camera_id,
    cast(deployments.deployment_start as timestamp) as deployment_start,
    cast(deployments.deployment_end as timestamp) as deployment_end,
    cast(deployments.latitude as double) as latitude,
    cast(deployments.longitude as double) as longitude,
    cast(deployments.utc_offset as varchar) as utc_offset,
    cast(deployments.clock_offset_s as double) as clock_offset_s,
    cast(deployments.is_inferred as boolean) as is_inferred,
    cast(coalesce(placed.images, 0) as bigint) as images,
    cast(coalesce(operation.deployed_days, 0) as bigint) as deployed_days,
    cast(coalesce(operation.trap_nights, 0) as double) as trap_nights
from deployments
left join operation
    on deployments.deployment_id = operation.deployment_id
left join placed
    on deployments.deployment_id = placed.deployment_id
