{#- Camera operation per site x camera x day (camtrapR cameraOperation by camera): effort = the
    fraction of the day the camera worked (0.5 on a setup or retrieval day given as a date), 0
    down, null not deployed; is_operational 1 when effort > 0. -#}

with

operation as (
    select * from {{ ref('int_camera_operation_daily') }}
)

select
    cast(site_id as varchar) as site_id,
    cast(camera_id as varchar) as camera_id,
    cast(deployment_id as varchar) as deployment_id,
    cast(operation_on as date) as day,
    cast(effort as double) as effort,
    cast(is_operational as integer) as is_operational,
    cast(is_inferred as boolean) as is_inferred,
    cast(is_downtime_inferred as boolean) as is_downtime_inferred,
    cast(down_reason as varchar) as down_reason
from operation
