{#- The burst of every still: the photos of one camera taken less than independence_minutes
    after the previous one are one burst (a visit's frames). The Label page shows one frame
    per burst, and "train now" keeps each burst on one side of its split, so held-out photos
    are never near-copies of training ones. A photo without a time is a burst of its own.
    The one burst rule of the warehouse (models_ml.training_data.split_groups applies the same
    gap to folders of files that never came through a run). -#}
{{ config(materialized='table') }}
{%- set s = population_settings() -%}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
    where media_type = 'image'
),

gaps as (
    select
        media_id,
        site_id,
        camera_id,
        captured_at,
        case
            when captured_at is null then null
            when lag(captured_at) over by_camera is null then 1
            when epoch_us(captured_at) - epoch_us(lag(captured_at) over by_camera)
                >= {{ s.independence_us }} then 1
            else 0
        end as starts_burst
    from media
    window by_camera as (
        partition by site_id, camera_id, captured_at is null order by captured_at, media_id
    )
),

numbered as (
    select
        *,
        sum(starts_burst) over (
            partition by site_id, camera_id, captured_at is null
            order by captured_at, media_id
            rows between unbounded preceding and current row
        ) as burst_number
    from gaps
),

final as (
    select
        media_id,
        site_id,
        camera_id,
        case
            when captured_at is null then 'media:' || media_id
            else site_id || '/' || camera_id || '#' || cast(burst_number as varchar)
        end as burst_id,
        captured_at
    from numbered
)

select * from final
