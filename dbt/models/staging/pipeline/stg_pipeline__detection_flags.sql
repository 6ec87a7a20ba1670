with

source as (
    select * from {{ source('pipeline', 'detection_flags') }}
),

renamed as (
    select
        ----------  ids
        detection_id,
        cluster_id,
        run_id,

        ----------  the flag
        flag,
        occurrences,
        detail,

        ----------  timestamps
        flagged_at

    from source
)

select * from renamed
