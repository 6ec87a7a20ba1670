{#- One row per pipeline run (one poll of one source): status, counters, images/s, stage
    timings and the model versions it ran. A view, so the run in progress (status 'running')
    and the one that just finished show at once, between builds. -#}
{{ config(materialized='view') }}

with

runs as (
    select * from {{ ref('stg_pipeline__runs') }}
),

final as (
    select
        ----------  ids
        cast(run_id as varchar) as run_id,
        cast(flow_run_id as varchar) as flow_run_id,

        ----------  run
        cast(source_uri as varchar) as source_uri,
        cast(run_status as varchar) as run_status,
        cast(model_versions as varchar) as model_versions,

        ----------  counters
        cast(files_listed as integer) as files_listed,
        cast(files_new as integer) as files_new,
        cast(images_processed as integer) as images_processed,
        cast(duplicates as integer) as duplicates,
        cast(detections as integer) as detections,
        cast(quarantined as integer) as quarantined,
        cast(warnings as integer) as warnings,

        ----------  speed and timings (seconds)
        cast(images_processed / nullif(duration_s, 0) as double) as images_per_s,
        cast(duration_s as double) as duration_s,
        cast(list_s as double) as list_s,
        cast(read_s as double) as read_s,
        cast(detect_s as double) as detect_s,
        cast(load_s as double) as load_s,
        cast(marts_s as double) as marts_s,

        ----------  booleans
        cast(is_completed as boolean) as is_completed,

        ----------  timestamps (UTC)
        cast(started_at as timestamp) as started_at,
        cast(finished_at as timestamp) as finished_at
    from runs
)

select * from final
