{#- Whether the table marts are behind the raw data: one row comparing the newest ingest
    now (media ingested_at, boxes detected_at: new images, or old ones run through a new model)
    with the newest one the last build saw (marts_build.built_through_at), and what the station
    tables say now with what they said at that build (station_tables_state). Both times come from
    the same raw columns, so no clock is compared with another. A view: it is current on every
    read. -#}
{{ config(materialized='view') }}

with

build as (
    select * from {{ ref('marts_build') }}
),

media as (
    select
        count(*) as media,
        max(ingested_at) as last_ingested_at
    from {{ ref('stg_pipeline__media') }}
),

detections as (
    select max(detected_at) as last_detected_at
    from {{ ref('stg_pipeline__detections') }}
),

now_seen as (
    select
        media.media,
        greatest(media.last_ingested_at, detections.last_detected_at) as latest_ingested_at
    from media
    cross join detections
)

select
    cast(build.built_at as timestamp) as built_at,
    cast(build.built_through_at as timestamp) as built_through_at,
    cast(now_seen.latest_ingested_at as timestamp) as latest_ingested_at,
    cast(greatest(now_seen.media - build.media, 0) as bigint) as media_since_build,
    cast(
        build.station_tables_state is distinct from {{ station_tables_state() }} as boolean
    ) as station_tables_changed,
    cast(
        (
            now_seen.latest_ingested_at is not null
            and (
                build.built_through_at is null
                or now_seen.latest_ingested_at > build.built_through_at
            )
        )
        or build.station_tables_state is distinct from {{ station_tables_state() }} as boolean
    ) as is_stale
from build
cross join now_seen
