{#- Incremental by media (int_detections_labelled). A media's state is a string of everything
    the labelling reads about it; a media whose state differs from the stored one (or that has
    no stored rows) is rebuilt. The counting vars are part of the state, so changing a threshold
    rebuilds every media. Raw is append-only; a deleted review row needs `dbt build --full-refresh`. -#}
{% macro media_state_sql() -%}
    select
        media.media_id,
        concat_ws(
            '|',
            '{{ counting_rules_fingerprint() }}',
            media.site_id,
            media.camera_id,
            cast(media.captured_at as varchar),
            cast(coalesce(boxes.n, 0) as varchar),
            cast(boxes.last_at as varchar),
            cast(coalesce(labels.n, 0) as varchar),
            cast(labels.last_at as varchar),
            cast(coalesce(reviews.n, 0) as varchar),
            cast(reviews.last_at as varchar),
            cast(coalesce(flags.n, 0) as varchar),
            cast(flags.last_at as varchar)
        ) as media_state
    from {{ ref('stg_pipeline__media') }} as media
    left join (
        select media_id, count(*) as n, max(detected_at) as last_at
        from {{ ref('stg_pipeline__detections') }}
        group by media_id
    ) as boxes on media.media_id = boxes.media_id
    left join (
        select media_id, count(*) as n, max(classified_at) as last_at
        from {{ ref('stg_pipeline__classifications') }}
        group by media_id
    ) as labels on media.media_id = labels.media_id
    left join (
        select media_id, count(*) as n, max(reviewed_at) as last_at
        from {{ ref('int_human_labels') }}
        group by media_id
    ) as reviews on media.media_id = reviews.media_id
    left join (
        select detections.media_id, count(*) as n, max(flags.flagged_at) as last_at
        from {{ ref('stg_pipeline__detection_flags') }} as flags
        inner join {{ ref('stg_pipeline__detections') }} as detections
            on flags.detection_id = detections.detection_id
        group by detections.media_id
    ) as flags on media.media_id = flags.media_id
{%- endmacro %}

{#- The media to (re)build and their current state: every media on a full build, else those
    whose state differs from the one stored in `existing` (or that have none stored). -#}
{% macro changed_media_sql(existing) -%}
    {%- if existing is none -%}
        {{ media_state_sql() }}
    {%- else -%}
        select current_state.media_id, current_state.media_state
        from ({{ media_state_sql() }}) as current_state
        left join (select distinct media_id, media_state from {{ existing }}) as stored
            on current_state.media_id = stored.media_id
        where stored.media_state is distinct from current_state.media_state
    {%- endif -%}
{%- endmacro %}

{#- The changed media of this incremental build, computed once (the state check is a
    group-by over every box): the pre-hook stores them in <model>__changed and deletes their
    old rows, the model reads them back, the post-hook drops the table. -#}
{% macro changed_media_relation() -%}
    {{ this.database }}.{{ this.schema }}.{{ this.identifier }}__changed
{%- endmacro %}

{% macro changed_media_prepare() -%}
    create or replace table {{ changed_media_relation() }} as {{ changed_media_sql(this) }};
    delete from {{ this }} where media_id in (select media_id from {{ changed_media_relation() }})
{%- endmacro %}
