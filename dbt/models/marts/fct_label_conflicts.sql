{#- One row per photo whose imported human labels disagree (its {species} folder, its XMP
    keywords, a CSV): int_human_labels leaves all of them out, so the photo counts only by its
    models until a reviewer labels it on the dashboard. `labels` lists what each source says. -#}
{{ config(materialized='table') }}

with

conflicting as (
    select * from {{ ref('int_media_labels_conflicting') }}
),

media as (
    select * from {{ ref('stg_pipeline__media') }}
),

human_labels as (
    select * from {{ ref('int_human_labels') }}
)

select
    conflicting.media_id,
    media.site_id,
    media.file_path,
    conflicting.labels,
    conflicting.found_in,
    conflicting.sources,
    conflicting.media_id in (
        select media_id from human_labels where is_image_label and label_origin = 'dashboard'
    ) as is_resolved_by_review
from conflicting
inner join media on conflicting.media_id = media.media_id
