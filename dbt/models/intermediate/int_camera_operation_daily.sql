{#- Camera operation per site x camera x day (camtrapR >= 2.1 cameraOperation, by camera):
    effort = the fraction of the day the camera was working, null = not deployed that day.

    - The effort window is the deployment's (int_deployments_unioned: a setup or retrieval
      given as a date alone is at 12:00, so that day counts 0.5).
    - Problem periods (int_deployment_problems) are taken off, to the second; a day wholly in
      a problem is 0 (down_reason 'problem').
    - A listed deployment (a station table, deployments.csv, an imported package) worked from
      setup to retrieval less its problem periods, as camtrapR's cameraOperation and Camtrap
      DP's effort read it: the table says when the camera was down.
    - For deployments inferred from images (no table lists the camera) downtime is inferred
      from trigger silence: a gap between consecutive images longer than camera_down_gap_days
      makes the whole days strictly in between 0, flagged is_downtime_inferred (down_reason
      'no_images'). With listed_downtime_from_gaps, the same for listed deployments whose
      table has no problem columns (the effort window's start and end count as images).
    - An inferred deployment counts whole days from its first to its last image day.
    Two deployments of one camera on one day (retrieval and a new setup) add up.
    A table: read by the effort of every mart (site-day effort, RAI units, deployments). -#}
{{ config(materialized='table') }}
{%- set s = population_settings() -%}

with

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

problems as (
    select * from {{ ref('int_deployment_problems') }}
),

media as (
    select * from {{ ref('int_media_placed') }}
),

points as (
    select
        media.deployment_id,
        media.captured_at as point_at
    from media
    inner join deployments
        on media.deployment_id = deployments.deployment_id
    where deployments.is_inferred
        or ({{ s.listed_downtime_from_gaps }} and not deployments.problems_listed)

    union all

    select deployment_id, effort_start as point_at
    from deployments
    where {{ s.listed_downtime_from_gaps }} and not is_inferred and not problems_listed

    union all

    select deployment_id, effort_end as point_at
    from deployments
    where {{ s.listed_downtime_from_gaps }} and not is_inferred and not problems_listed
),

gaps as (
    select
        deployment_id,
        lag(point_at) over (partition by deployment_id order by point_at) as previous_at,
        point_at
    from points
),

silent_spans as (
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
        deployments.effort_start,
        deployments.effort_end,
        cast(day_at as date) as operation_on,
        cast(day_at as timestamp) as day_start,
        cast(day_at as timestamp) + interval 1 day as day_end
    from deployments,
        unnest(generate_series(
            cast(deployments.effort_start as date),
            cast(deployments.effort_end - interval 1 microsecond as date),
            interval 1 day
        )) as days (day_at)
    where deployments.effort_end > deployments.effort_start
),

problem_share as (
    select
        deployment_days.deployment_id,
        deployment_days.operation_on,
        sum(greatest(
            epoch_us(least(deployment_days.day_end, problems.down_to))
            - epoch_us(greatest(deployment_days.day_start, problems.down_from)),
            0
        )) / 86400000000.0 as down_share
    from deployment_days
    inner join problems
        on deployment_days.deployment_id = problems.deployment_id
        and problems.down_from < deployment_days.day_end
        and problems.down_to > deployment_days.day_start
    group by all
),

deployed as (
    select
        deployment_days.deployment_id,
        deployment_days.site_id,
        deployment_days.camera_id,
        deployment_days.is_inferred,
        deployment_days.operation_on,
        (epoch_us(least(deployment_days.day_end, deployment_days.effort_end))
            - epoch_us(greatest(deployment_days.day_start, deployment_days.effort_start))
        ) / 86400000000.0 as window_share,
        coalesce(problem_share.down_share, 0) as down_share,
        exists (
            select 1 from silent_spans
            where
                silent_spans.deployment_id = deployment_days.deployment_id
                and deployment_days.operation_on
                    between silent_spans.down_from and silent_spans.down_to
        ) as is_silent
    from deployment_days
    left join problem_share
        on deployment_days.deployment_id = problem_share.deployment_id
        and deployment_days.operation_on = problem_share.operation_on
),

scored as (
    select
        *,
        case when is_silent then 0.0
            else round(greatest(window_share - down_share, 0), 6) end as effort
    from deployed
),

per_camera_day as (
    select
        site_id,
        camera_id,
        operation_on,
        arg_max(deployment_id, effort) as deployment_id,
        least(sum(effort), 1.0) as effort,
        bool_and(is_inferred) as is_inferred,
        bool_or(is_silent) as is_downtime_inferred,
        bool_or(down_share > 0) as has_problem
    from scored
    group by site_id, camera_id, operation_on
),

camera_days as (
    {#- the camera's whole span, so days between its deployments are null (not deployed) -#}
    select
        site_id,
        camera_id,
        cast(day_at as date) as operation_on
    from (
        select
            site_id,
            camera_id,
            min(effort_start) as first_at,
            max(effort_end - interval 1 microsecond) as last_at
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
        per_camera_day.deployment_id,
        camera_days.operation_on,
        per_camera_day.effort,
        case when per_camera_day.effort is null then null
            when per_camera_day.effort > 0 then 1 else 0 end as is_operational,
        coalesce(per_camera_day.is_inferred, false) as is_inferred,
        coalesce(per_camera_day.is_downtime_inferred, false) as is_downtime_inferred,
        case
            when per_camera_day.is_downtime_inferred then 'no_images'
            when per_camera_day.has_problem then 'problem'
        end as down_reason
    from camera_days
    left join per_camera_day
        on camera_days.site_id = per_camera_day.site_id
        and camera_days.camera_id = per_camera_day.camera_id
        and camera_days.operation_on = per_camera_day.operation_on
)

select * from final
