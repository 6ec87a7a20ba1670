{#- One row per media file (SHA-256), with what the counted boxes found in it. Media with
    no counted box have has_* = false and n_* = 0. -#}

with

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

detections as (
    select * from {{ ref('int_detections_filtered_to_threshold') }}
),

counts_per_media as (
    select
        media_id,
        count(*) filter (where category = 'animal') as n_animals,
        count(*) filter (where category = 'person') as n_persons,
        count(*) filter (where category = 'vehicle') as n_vehicles
    from detections
    group by media_id
),

joined as (
    select
        media.media_id,
        media.site_id,
        media.camera_id,
        media.source_uri,
        media.file_path,
        media.captured_at,
        media.captured_on,
        media.timestamp_source,
        media.latitude,
        media.longitude,
        media.camera_make,
        media.camera_model,
        media.camera_serial,
        media.width,
        media.height,
        coalesce(counts_per_media.n_animals, 0) as n_animals,
        coalesce(counts_per_media.n_persons, 0) as n_persons,
        coalesce(counts_per_media.n_vehicles, 0) as n_vehicles
    from media
    left join counts_per_media
        on media.media_id = counts_per_media.media_id
),

final as (
    select
        ----------  ids
        cast(media_id as varchar) as media_id,
        cast(site_id as varchar) as site_id,
        cast(camera_id as varchar) as camera_id,

        ----------  file
        cast(source_uri as varchar) as source_uri,
        cast(file_path as varchar) as file_path,

        ----------  capture
        cast(captured_at as timestamp) as captured_at,
        cast(captured_on as date) as captured_on,
        cast(timestamp_source as varchar) as timestamp_source,
        cast(latitude as double) as latitude,
        cast(longitude as double) as longitude,
        cast(camera_make as varchar) as camera_make,
        cast(camera_model as varchar) as camera_model,
        cast(camera_serial as varchar) as camera_serial,
        cast(width as integer) as width,
        cast(height as integer) as height,

        ----------  what the counted boxes found
        n_animals > 0 as has_animal,
        n_persons > 0 as has_person,
        n_vehicles > 0 as has_vehicle,
        cast(n_animals as bigint) as n_animals,
        cast(n_persons as bigint) as n_persons,
        cast(n_vehicles as bigint) as n_vehicles
    from joined
)

select * from final
