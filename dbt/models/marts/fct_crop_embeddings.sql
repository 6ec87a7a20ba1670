{#- Every cached crop embedding (raw.crop_embeddings, through staging): the box's crop
    (crop_key = its detection_id) or the photo's whole frame ('whole_frame'), per embedder,
    with its sketch. The Label page ranks its sketch candidates on these full vectors. A VIEW:
    what a run, a relabel or `trapflow embed` cached is here at once. -#}
{{ config(materialized='view') }}

select
    media_id,
    crop_key,
    detection_id,
    embedder,
    embedding,
    sketch,
    is_whole_frame,
    embedded_at
from {{ ref('stg_pipeline__crop_embeddings') }}
