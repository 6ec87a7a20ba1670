{#- Camera operation per site x camera x day: 1 working, 0 down, null not deployed. -#}

with

operation as (
    select * from {{ ref('int_camera_operation_daily') }}
)

select
    cast(site_id as varchar) as site_id,
    cast(camera_id as varchar) as camera_id,
    cast(deployment_id as varchar) as deployment_id,
    cast(operation_on as date) as day,
    cast(is_operational as integer) as is_operational,
    cast(is_inferred as boolean) as is_inferred
from operation
