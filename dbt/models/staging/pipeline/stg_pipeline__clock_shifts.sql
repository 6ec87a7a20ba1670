with

source as (
    select * from {{ source('pipeline', 'clock_shifts') }}
),

renamed as (
    select
        ----------  ids
        site_id,
        camera_id,

        ----------  the shift (a calendar interval) and how it was written
        shift,
        shift_months,
        shift_days,
        shift_micros,
        shift_text,
        'time_shift_table' as shift_origin,

        ----------  provenance
        source_file,
        source_line,

        ----------  timestamps
        loaded_at

    from source
)

select * from renamed
