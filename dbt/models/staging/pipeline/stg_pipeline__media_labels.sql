with

source as (
    select * from {{ source('pipeline', 'media_labels') }}
),

renamed as (
    select
        ----------  ids
        media_label_id,
        media_id,
        run_id,

        ----------  what the label says, and where it came from
        lower(trim(category)) as category,
        nullif(trim(label), '') as label,
        source,
        source_detail,
        cast("count" as integer) as individuals,

        ----------  timestamps
        imported_at

    from source
)

select * from renamed
