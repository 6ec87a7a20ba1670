with

source as (
    select * from {{ source('pipeline', 'detections') }}
),

renamed as (
    select
        ----------  ids
        detection_id,
        media_id,
        run_id,

        ----------  model
        model_name,
        model_version,
        model_name || '@' || model_version as model_ref,

        ----------  what was found
        category,
        category_id,
        label,
        confidence,

        ----------  box, normalised [x_min, y_min, width, height]
        bbox_x,
        bbox_y,
        bbox_w,
        bbox_h,
        bbox_w * bbox_h as bbox_area,
        frame_number,
        frame_time_s,  -- seconds into the clip (videos), else null

        ----------  timestamps
        detected_at

    from source
)

select * from renamed
