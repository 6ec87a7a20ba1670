{#- Every human label in force, one shape: the dashboard's reviews (stg_review__labels) and the
    labels that came in with the photos or from a file (stg_pipeline__media_labels), as
    whole-image labels. This is what every model that lets people win over the models reads.

    An imported label is left out when
    - the photo's sources disagree (its folder says one species, its XMP keywords another, a
      CSV a third): never resolved here; marts.fct_label_conflicts lists the photo and a review
      on the dashboard decides;
    - the dashboard already has a whole-image review of the photo: a person looked at it here.
    The same label from two sources (folder and keyword agree) is one label. A VIEW, so a
    review or an import counts at the next build and in the live views at once. -#}
{{ config(materialized='view') }}

with

reviews as (
    select * from {{ ref('stg_review__labels') }}
),

imported as (
    select * from {{ ref('stg_pipeline__media_labels') }}
),

conflicting as (
    select media_id from {{ ref('int_media_labels_conflicting') }}
),

reviewed_images as (
    select distinct media_id
    from reviews
    where is_image_label
),

agreed as (
    select *
    from imported
    where
        media_id not in (select media_id from conflicting)
        and media_id not in (select media_id from reviewed_images)
    qualify row_number() over (
        partition by media_id, category, lower(coalesce(label, ''))
        order by imported_at, media_label_id
    ) = 1
),

from_reviews as (
    select
        label_id,
        media_id,
        detection_id,
        category,
        label,
        individuals,
        reviewer,
        note,
        is_false_positive,
        is_image_label,
        reviewed_at,
        'dashboard' as label_origin
    from reviews
),

from_imports as (
    select
        media_label_id as label_id,
        media_id,
        cast(null as varchar) as detection_id,
        category,
        label,
        individuals,
        'import:' || source as reviewer,
        source_detail as note,
        category = 'blank' as is_false_positive,
        true as is_image_label,
        imported_at as reviewed_at,
        source as label_origin
    from agreed
)

select * from from_reviews
union all
select * from from_imports
