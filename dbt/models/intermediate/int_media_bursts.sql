{#- The burst of every still: the photos of one camera taken less than independence_minutes
    after the previous one are one burst (a visit's frames). The Label page shows one frame
    per burst, and "train now" keeps each burst on one side of its split, so held-out photos
    are never near-copies of training ones. A photo without a time is a burst of its own.
    The one burst rule of the warehouse (models_ml.training_data.split_groups applies the same
    gap to folders of files that never came through a run).

    Incremental (macros/incremental_bursts.sql): only the photos not stored are numbered, with
    each camera's stored photos from the burst its earliest new photo lands in. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}{{ bursts_renumber_prepare() }}{% endif %}",
    post_hook="drop table if exists {{ bursts_renumber_relation() }}",
) }}
{%- set s = population_settings() -%}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
    where media_type = 'image'
    {%- if is_incremental() %}
        and media_id not in (select media_id from {{ this }})
    {%- endif %}
),

numbers_kept as (
    {%- if is_incremental() %}
    select site_id, camera_id, numbers_kept from {{ bursts_renumber_relation() }}
    {%- else %}
    select null::varchar as site_id, null::varchar as camera_id, 0::bigint as numbers_kept
    where false
    {%- endif %}
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
        gaps.*,
        coalesce(numbers_kept.numbers_kept, 0) + sum(gaps.starts_burst) over (
            partition by gaps.site_id, gaps.camera_id, gaps.captured_at is null
            order by gaps.captured_at, gaps.media_id
            rows between unbounded preceding and current row
        ) as burst_number
    from gaps
    left join numbers_kept
        on gaps.site_id = numbers_kept.site_id
        and gaps.camera_id = numbers_kept.camera_id
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
        captured_at,
        cast(case when captured_at is not null then burst_number end as bigint) as burst_number,
        {{ bursts_state() }} as bursts_state
    from numbered
)

select * from final
