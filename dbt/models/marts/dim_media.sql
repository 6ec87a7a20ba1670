{#- One row per media file (SHA-256), with what the counted observations found in it
    (int_observations_per_image: thresholds, review labels, repeat-detection flags, people
    de-duplicated per image) and the deployment it was placed in. captured_at is the corrected
    time the events use (clock shifts and the deployment's offset: int_media_deployed, else
    int_media_located's shifted time); camera_captured_at what the camera wrote. latitude and
    longitude are the image's GPS unless it is a placeholder (int_media_located).

    Written as the rows that differ from the stored ones (macros/incremental_rows.sql):
    writing 700k rows was most of this model's cost. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='media_id',
    on_schema_change='fail',
    post_hook="{{ gone_rows_deleted('media_id', ref('stg_pipeline__media')) }}",
) }}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

observations as (
    select * from {{ ref('int_observations_per_image') }}
),

placed as (
    select * from {{ ref('int_media_placed') }}
),

located as (
    select * from {{ ref('int_media_located') }}
),

counts_per_media as (
    select
        media_id,
        sum(individuals) filter (where category = 'animal') as n_animals,
        sum(individuals) filter (where category = 'person') as n_persons,
        sum(individuals) filter (where category = 'vehicle') as n_vehicles,
        bool_or(label_source = 'review') as is_reviewed
    from observations
    group by media_id
),

final as (
    select
        ----------  ids
        cast(media.media_id as varchar) as media_id,
        cast(media.site_id as varchar) as site_id,
        cast(media.camera_id as varchar) as camera_id,
        cast(placed.deployment_id as varchar) as deployment_id,

        ----------  file
        cast(media.source_uri as varchar) as source_uri,
        cast(media.file_path as varchar) as file_path,

        ----------  capture
        cast(coalesce(placed.captured_at, located.captured_at) as timestamp) as captured_at,
        cast(coalesce(placed.captured_at, located.captured_at) as date) as captured_on,
        cast(media.captured_at as timestamp) as camera_captured_at,
        cast(media.timestamp_source as varchar) as timestamp_source,
        cast(located.latitude as double) as latitude,
        cast(located.longitude as double) as longitude,
        cast(media.camera_make as varchar) as camera_make,
        cast(media.camera_model as varchar) as camera_model,
        cast(media.camera_serial as varchar) as camera_serial,
        cast(media.width as integer) as width,
        cast(media.height as integer) as height,

        ----------  what the counted observations found
        coalesce(counts_per_media.n_animals, 0) > 0 as has_animal,
        coalesce(counts_per_media.n_persons, 0) > 0 as has_person,
        coalesce(counts_per_media.n_vehicles, 0) > 0 as has_vehicle,
        cast(coalesce(counts_per_media.n_animals, 0) as bigint) as n_animals,
        cast(coalesce(counts_per_media.n_persons, 0) as bigint) as n_persons,
        cast(coalesce(counts_per_media.n_vehicles, 0) as bigint) as n_vehicles,
        coalesce(counts_per_media.is_reviewed, false) as is_reviewed
    from media
    left join counts_per_media
        on media.media_id = counts_per_media.media_id
    left join placed
        on media.media_id = placed.media_id
    left join located
        on media.media_id = located.media_id
)

select * from final
{{ changed_rows_only() }}
