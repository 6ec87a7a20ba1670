with

source as (
    select * from {{ source('review', 'labels') }}
),

renamed as (
    select
        ----------  ids
        label_id,
        media_id,
        detection_id,

        ----------  what the reviewer said
        lower(trim(category)) as category,
        nullif(trim(label), '') as label,
        count as individuals,
        reviewer,
        note,

        ----------  booleans
        coalesce(is_false_positive, false) or lower(trim(category)) = 'blank' as is_false_positive,
        detection_id is null as is_image_label,

        ----------  timestamps
        reviewed_at

    from source
)

select * from renamed
