{#- Time per behaviour: seconds of clip each behaviour head's label covers, per site and
    label (from fct_clip_timeline), with the clips it was seen in. -#}
{{ config(materialized='table') }}

with

timeline as (
    select * from {{ ref('fct_clip_timeline') }}
)

select
    site_id,
    model_name,
    label,
    round(sum(end_s - start_s), 3) as seconds,
    count(distinct media_id) as clips,
    cast(sum(frames) as bigint) as frames
from timeline
group by site_id, model_name, label
