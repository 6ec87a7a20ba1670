{#- Every sampled frame of a clip with the label of the latest version of each behaviour head
    that labelled the clip (older versions' rows stay in raw.frame_labels). -#}
{{ config(materialized='view') }}

with

frames as (
    select * from {{ ref('stg_pipeline__frame_labels') }}
),

latest_versions as (
    select
        media_id,
        model_name,
        model_version
    from frames
    group by media_id, model_name, model_version
    qualify row_number() over (
        partition by media_id, model_name order by max(labelled_at) desc, model_version desc
    ) = 1
)

select
    frames.media_id,
    frames.model_name,
    frames.model_version,
    frames.frame_number,
    frames.frame_time_s,
    frames.label,
    frames.probability
from frames
inner join latest_versions using (media_id, model_name, model_version)
