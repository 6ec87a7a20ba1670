with

source as (
    select * from {{ source('pipeline', 'frame_labels') }}
),

renamed as (
    select
        ----------  ids
        frame_label_id,
        media_id,
        run_id,

        ----------  the frame
        frame_number,
        frame_time_s,

        ----------  model
        model_name,
        model_version,

        ----------  what it says
        label,
        probability,

        ----------  timestamps
        labelled_at

    from source
)

select * from renamed
