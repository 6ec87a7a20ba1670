with

source as (
    select * from {{ source('pipeline', 'classifications') }}
),

renamed as (
    select
        ----------  ids
        classification_id,
        detection_id,
        media_id,
        run_id,

        ----------  model
        model_name,
        model_version,
        model_name || '@' || model_version as model_ref,

        ----------  what was found
        label,
        probability,
        rank as label_rank,
        geofence_status,

        ----------  booleans
        geofence_status = 'rolled_up' as is_rolled_up,

        ----------  timestamps
        classified_at

    from source
)

select * from renamed
