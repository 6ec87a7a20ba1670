{#- The rule for imported human labels that disagree, written once: a photo whose sources
    (its {species} folder, its XMP keywords, a CSV) give different sets of labels (compared
    case-insensitively; several labels from one source are several species in the photo).
    One row per such photo with what each source says. int_human_labels leaves these photos'
    imported labels out; marts.fct_label_conflicts reports them. -#}
{{ config(materialized='view') }}

with

imported as (
    select * from {{ ref('stg_pipeline__media_labels') }}
),

labels_per_source as (
    select
        media_id,
        source,
        string_agg(
            distinct category || ':' || coalesce(lower(label), ''), '|'
            order by category || ':' || coalesce(lower(label), '')
        ) as label_set,
        string_agg(
            distinct coalesce(label, category), ', ' order by coalesce(label, category)
        ) as labels,
        min(source_detail) as source_detail
    from imported
    group by media_id, source
)

select
    media_id,
    string_agg(source || ': ' || labels, '; ' order by source) as labels,
    string_agg(source || ': ' || source_detail, '; ' order by source) as found_in,
    count(*) as sources
from labels_per_source
group by media_id
having count(distinct label_set) > 1
