{#- Dated media placed in their deployment: same site and camera (a station-wide deployment,
    camera '*', takes every camera of its station), the shifted time (int_media_located: the
    clock shifts applied, as the station table's times are true times) within
    [deployment_start, deployment_end]; the deployment's clock_offset_s is then added
    (captured_at here is the corrected local time the events and dates use). Media of a camera
    listed in a station table that fall outside all its deployments are left out here (they
    stay in dim_media with deployment_id null). -#}

with

media as (
    select * from {{ ref('int_media_located') }}
    where captured_at is not null
),

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

placed as (
    select
        media.media_id,
        deployments.deployment_id,
        media.site_id,
        media.camera_id,
        media.camera_captured_at,
        media.captured_at + to_microseconds(
            cast(round(deployments.clock_offset_s * 1000000) as bigint)
        ) as captured_at
    from media
    inner join deployments
        on media.site_id = deployments.site_id
        and (media.camera_id = deployments.camera_id or deployments.camera_id = '*')
        and media.captured_at between deployments.deployment_start and deployments.deployment_end
    qualify row_number() over (
        partition by media.media_id order by deployments.deployment_start desc
    ) = 1
)

select
    *,
    cast(captured_at as date) as captured_on
from placed
