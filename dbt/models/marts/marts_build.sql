{#- One row: when the marts were last built and the newest raw data that build saw. Built
    after every table mart (the depends_on below), so a build that fails or skips a table mart
    leaves the previous row here, and marts_freshness keeps saying the marts are behind.
    station_tables_state: a hash of the deployments, problem periods and clock shifts this build
    used (macros/population_settings.sql). -#}
-- depends_on: {{ ref('fct_daily_population') }}
-- depends_on: {{ ref('fct_events') }}
-- depends_on: {{ ref('fct_camera_operation') }}
-- depends_on: {{ ref('fct_human_activity') }}
-- depends_on: {{ ref('fct_population_variance') }}
-- depends_on: {{ ref('fct_population_trend') }}
-- depends_on: {{ ref('fct_rai_intervals') }}
-- depends_on: {{ ref('fct_clips') }}
-- depends_on: {{ ref('dim_deployments') }}
-- depends_on: {{ ref('dim_media') }}

with

media as (
    select
        count(*) as media,
        max(ingested_at) as last_ingested_at
    from {{ ref('stg_pipeline__media') }}
),

detections as (
    select max(detected_at) as last_detected_at
    from {{ ref('stg_pipeline__detections') }}
)

select
    cast(timezone('UTC', now()) as timestamp) as built_at,
    cast(media.media as bigint) as media,
    cast(
        greatest(media.last_ingested_at, detections.last_detected_at) as timestamp
    ) as built_through_at,
    cast({{ station_tables_state() }} as varchar) as station_tables_state
from media
cross join detections
