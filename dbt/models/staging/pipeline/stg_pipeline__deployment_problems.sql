with

source as (
    select * from {{ source('pipeline', 'deployment_problems') }}
),

renamed as (
    select
        ----------  ids
        deployment_id,
        problem_number,

        ----------  booleans
        from_is_date,
        to_is_date,

        ----------  provenance
        source_file,
        source_line,

        ----------  timestamps (camera-local, as the station table wrote them)
        problem_from,
        problem_to,
        loaded_at

    from source
)

select * from renamed
