{#- One row per cached crop embedding (raw.crop_embeddings): the crop of a box (crop_key is its
    detection_id) or the whole frame, by one embedder; sketch is its short random projection
    for the Label page's similar-crop search (null until `trapflow embed` fills old rows). -#}
with

source as (
    select * from {{ source('pipeline', 'crop_embeddings') }}
),

renamed as (
    select
        ----------  ids
        media_id,
        crop_key,
        case when crop_key = 'whole_frame' then null else crop_key end as detection_id,
        run_id,

        ----------  the vectors
        embedder,
        cast(embedding as float[]) as embedding,
        cast(sketch as float[128]) as sketch,

        ----------  booleans
        crop_key = 'whole_frame' as is_whole_frame,

        ----------  timestamps
        embedded_at

    from source
)

select * from renamed
