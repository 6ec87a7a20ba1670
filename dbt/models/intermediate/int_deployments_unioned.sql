{#- Every deployment: the rows of deployments.csv, plus one inferred deployment per site x
    camera that has none there (first to last image; location = the mean EXIF GPS). -#}

with

listed as (
    select * from {{ ref('stg_pipeline__deployments') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
    where captured_at is not null
),

inferred as (
    select
        media.site_id || '/' || media.camera_id as deployment_id,
        media.site_id,
        media.camera_id,
        min(media.captured_at) as deployment_start,
        max(media.captured_at) as deployment_end,
        avg(media.latitude) as latitude,
        avg(media.longitude) as longitude,
        mode(media.utc_offset) as utc_offset,
        cast(0 as double) as clock_offset_s,
        true as is_inferred
    from media
    left join listed
        on media.site_id = listed.site_id
        and media.camera_id = listed.camera_id
    where listed.deployment_id is null
    group by media.site_id, media.camera_id
),

unioned as (
    select
        deployment_id,
        site_id,
        camera_id,
        deployment_start,
        deployment_end,
        latitude,
        longitude,
        utc_offset,
        clock_offset_s,
        false as is_inferred
    from listed

    union all

    select * from inferred
)

select * from unioned
