with

source as (
    select * from {{ source('pipeline', 'runs') }}
),

renamed as (
    select
        ----------  ids
        run_id,
        flow_run_id,

        ----------  run
        source_uri,
        status as run_status,
        model_versions,

        ----------  counters
        files_listed,
        files_new,
        images_processed,
        duplicates,
        detections,
        quarantined,
        warnings,

        ----------  timings (seconds)
        duration_s,
        list_s,
        read_s,
        detect_s,
        load_s,
        marts_s,

        ----------  booleans
        status = 'completed' as is_completed,

        ----------  timestamps
        started_at,
        finished_at

    from source
)

select * from renamed
