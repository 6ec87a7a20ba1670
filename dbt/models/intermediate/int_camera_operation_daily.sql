{#- Camera operation per site x camera x day (camtrapR cameraOperation, inferred from images):
    1 = working, 0 = down, null = not deployed that day. Between consecutive images of a
    deployment (and, for deployments.csv rows, between its start or end and the nearest image)
    a gap longer than camera_down_gap_days makes the whole days strictly in between 0. Days with
    images, and setup/retrieval days, count as full days. -#}
{%- set s = population_settings() -%}

with

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

media as (
    select * from {{ ref('int_media_deployed') }}
),

points as (
    select
        deployment_id,
        camera_captured_at as point_at
    from media

    union all

    select
        deployment_id,
        deployment_start as point_at
    from deployments
    where not is_inferred

    union all

    select
        deployment_id,
        deployment_end as point_at
    from deployments
    where not is_inferred
),

gaps as (
    select
        deployment_id,
        lag(point_at) over (partition by deployment_id order by point_at) as previous_at,
        point_at
    from points
),

down_spans as (
    select
        deployment_id,
        cast(previous_at as date) + 1 as down_from,
        cast(point_at as date) - 1 as down_to
    from gaps
    where
        previous_at is not null
        and epoch_us(point_at) - epoch_us(previous_at) > {{ s.down_gap_us }}
        and cast(previous_at as date) + 1 <= cast(point_at as date) - 1
),

deployment_days as (
    select
        deployments.deployment_id,
        deployments.site_id,
        deployments.camera_id,
        deployments.is_inferred,
        cast(day_at as date) as operation_on
    from deployments,
        unnest(generate_series(
            cast(deployments.deployment_start as date),
            cast(deployments.deployment_end as date),
            interval 1 day
        )) as days (day_at)
),

deployed as (
    select
        deployment_days.*,
        case when exists (
            select 1 from down_spans
            where
                down_spans.deployment_id = deployment_days.deployment_id
                and deployment_days.operation_on between down_spans.down_from and down_spans.down_to
        ) then 0 else 1 end as is_operational
    from deployment_days
),

camera_days as (
    {#- the camera's whole span, so days between its deployments are null (not deployed) -#}
    select
        site_id,
        camera_id,
        cast(day_at as date) as operation_on
    from (
        select site_id, camera_id, min(deployment_start) as first_at, max(deployment_end) as last_at
        from deployments
        group by site_id, camera_id
    ) as spans,
        unnest(generate_series(
            cast(first_at as date), cast(last_at as date), interval 1 day
        )) as days (day_at)
),

final as (
    select
        camera_days.site_id,
        camera_days.camera_id,
        deployed.deployment_id,
        camera_days.operation_on,
        deployed.is_operational,
        coalesce(deployed.is_inferred, false) as is_inferred
    from camera_days
    left join deployed
        on camera_days.site_id = deployed.site_id
        and camera_days.camera_id = deployed.camera_id
        and camera_days.operation_on = deployed.operation_on
    qualify row_number() over (
        partition by camera_days.site_id, camera_days.camera_id, camera_days.operation_on
        order by deployed.is_operational desc nulls last
    ) = 1
)

select * from final
