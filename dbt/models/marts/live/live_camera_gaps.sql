{#- Camera health as of now: one row per camera (site_id, camera_id) with photos, its last
    photo, its usual gap between photos and the moment it counts as silent. A VIEW over
    live_media, current between builds: the "silent" alert rule (flows/alerts/rules.py) reads
    silent_after and compares it with the clock; the thresholds are the vars here.

    usual_gap_hours: the silent_camera_gap_quantile of the hours between consecutive photos
    (inter-trigger gaps, bursts included: 0.95 picks the camera's long quiet spells).
    silent_after: last photo + silent_camera_gap_factor x usual_gap_hours, at least
    silent_camera_min_hours; null while the camera has fewer than silent_camera_min_gaps gaps.
    Times are camera-local (captured_at), as everywhere in the marts. -#}
{{ config(materialized='view') }}

with

media as (
    select site_id, camera_id, media_id, captured_at
    from {{ ref('live_media') }}
    where captured_at is not null
),

gaps as (
    select
        *,
        date_diff(
            'second',
            lag(captured_at) over (
                partition by site_id, camera_id order by captured_at, media_id
            ),
            captured_at
        ) / 3600.0 as gap_hours
    from media
),

per_camera as (
    select
        site_id,
        camera_id,
        count(*) as photos,
        count(gap_hours) as gaps,
        max(captured_at) as last_captured_at,
        arg_max(media_id, captured_at) as last_media_id,
        median(gap_hours) as median_gap_hours,
        quantile_cont(gap_hours, {{ var('silent_camera_gap_quantile') }}) as usual_gap_hours
    from gaps
    group by site_id, camera_id
),

final as (
    select
        cast(site_id as varchar) as site_id,
        cast(camera_id as varchar) as camera_id,
        cast(photos as bigint) as photos,
        cast(last_media_id as varchar) as last_media_id,
        cast(last_captured_at as timestamp) as last_captured_at,
        cast(median_gap_hours as double) as median_gap_hours,
        cast(usual_gap_hours as double) as usual_gap_hours,
        cast(case when gaps >= {{ var('silent_camera_min_gaps') }} then
            last_captured_at + to_microseconds(cast(3600e6 * greatest(
                {{ var('silent_camera_gap_factor') }} * usual_gap_hours,
                {{ var('silent_camera_min_hours') }}
            ) as bigint))
        end as timestamp) as silent_after
    from per_camera
)

select * from final
