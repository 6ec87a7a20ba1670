{#- Effort per site x day: trap_nights = cameras working that day (sum of is_operational);
    null when no camera was working (not deployed, or every deployed camera down). -#}

with

operation as (
    select * from {{ ref('int_camera_operation_daily') }}
),

per_site_day as (
    select
        site_id,
        operation_on,
        count(is_operational) as cameras_deployed,
        sum(is_operational) as cameras_working
    from operation
    group by site_id, operation_on
)

select
    site_id,
    operation_on,
    cameras_deployed,
    cast(nullif(cameras_working, 0) as double) as trap_nights
from per_site_day
where cameras_deployed > 0
