{#- Effort per site x day: trap_nights = the cameras' effort that day summed (fractional:
    camtrapR >= 2.1's half days on setup and retrieval, problem periods taken off; cameras of a
    site count independently, camtrapR camerasIndependent = TRUE); null when no camera was
    working (not deployed, or every deployed camera down). -#}

with

operation as (
    select * from {{ ref('int_camera_operation_daily') }}
),

per_site_day as (
    select
        site_id,
        operation_on,
        count(effort) as cameras_deployed,
        sum(effort) as effort
    from operation
    group by site_id, operation_on
)

select
    site_id,
    operation_on,
    cameras_deployed,
    cast(nullif(effort, 0) as double) as trap_nights
from per_site_day
where cameras_deployed > 0
