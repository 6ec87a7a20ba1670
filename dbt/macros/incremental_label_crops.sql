{#- Incremental label crops (int_label_crop_boxes), by media. A media's crop boxes read its
    resolved boxes (int_detections_resolved, whose media_state is the labelled state: boxes,
    classifications, reviews, flags, the counting vars) and its cached embeddings (not part of
    media_state: they are written by `trapflow embed`, and a sketch is filled in later), so
    the media's crop_state is both: its media_state and a digest of its embeddings. -#}
{% macro label_crop_state_sql() -%}
    select
        boxes.media_id,
        concat_ws('|', boxes.media_state, coalesce(embedded.digest, 0)) as crop_state
    from (
        select media_id, any_value(media_state) as media_state
        from {{ ref('int_detections_resolved') }}
        where is_built_candidate and built_category = 'animal' and not is_video
        group by media_id
    ) as boxes
    left join (
        select
            media_id,
            {{ rows_digest(
                "crop_key", "embedder", "cast(sketch as varchar)", "cast(embedded_at as varchar)"
            ) }} as digest
        from {{ ref('stg_pipeline__crop_embeddings') }}
        group by media_id
    ) as embedded
        on boxes.media_id = embedded.media_id
{%- endmacro %}

