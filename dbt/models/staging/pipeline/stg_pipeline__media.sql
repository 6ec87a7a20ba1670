with

source as (
    select * from {{ source('pipeline', 'media') }}
),

renamed as (
    select
        ----------  ids
        media_id,
        site_id,
        camera_id,
        run_id,

        ----------  file
        source_uri,
        file_path,
        file_name,
        file_extension,
        file_size as file_size_bytes,
        media_type,
        image_format,

        ----------  camera and image
        camera_make,
        camera_model,
        camera_serial,
        width,
        height,
        orientation,
        latitude,
        longitude,
        altitude as altitude_m,
        timestamp_source,
        timestamp_tag,
        utc_offset,
        exif_warnings,
        is_greyscale,

        ----------  video clips (null for stills)
        duration_s,
        fps,
        frame_count,
        frames_sampled,
        codec,
        container_format,

        ----------  booleans
        timestamp_source = 'exif' as is_timestamp_from_exif,
        latitude is not null and longitude is not null as has_location,
        exif_warnings is not null as has_exif_warnings,

        ----------  dates (camera-local: EXIF carries no zone)
        cast(captured_at as date) as captured_on,

        ----------  timestamps
        captured_at,
        ocr_captured_at,
        file_local_at,
        file_modified_at,
        ingested_at

    from source
)

select * from renamed
