with

source as (
    select * from {{ source('review', 'clock_shifts') }}
),

renamed as (
    select
        ----------  ids
        shift_id,
        site_id,
        camera_id,

        ----------  the shift and how it was written (camtrapR's timeShiftTable form)
        shift_months,
        shift_days,
        shift_micros,
        shift_text,
        'review' as shift_origin,
        problem_kind,

        ----------  who accepted it
        accepted_by,

        ----------  timestamps
        accepted_at

    from source
)

select * from renamed
