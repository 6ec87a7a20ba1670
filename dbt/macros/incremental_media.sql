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
    whose state differs from the one stored in `stored_states` (or that have none stored). -#}
{% macro changed_media_sql(stored_states) -%}
    {%- if stored_states is none -%}
        {{ media_state_sql() }}
    {%- else -%}
        select current_state.media_id, current_state.media_state
        from ({{ media_state_sql() }}) as current_state
        left join {{ stored_states }} as stored
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

{#- The state every media had at the last build, one row per media (<model>__state), kept by
    the post-hook: a media whose boxes are all below threshold has no row in the model, so
    the model's own rows cannot say it was labelled already, and it would be labelled again on
    every build. -#}
{% macro media_states_relation() -%}
    {{ this.database }}.{{ this.schema }}.{{ this.identifier }}__state
{%- endmacro %}

{% macro changed_media_prepare() -%}
    {%- set stored = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__state'
    ) -%}
    {%- if stored is none -%}
    {#- a table built before the states were kept: its own rows' states, once -#}
    create table {{ media_states_relation() }} as
    select distinct media_id, media_state from {{ this }};
    {%- endif %}
    create or replace table {{ changed_media_relation() }} as
    {{ changed_media_sql(media_states_relation()) }};
    delete from {{ this }} where media_id in (select media_id from {{ changed_media_relation() }})
{%- endmacro %}

{#- After the model: the stored states take this build's (all of them on a full build). -#}
{% macro changed_media_finish() -%}
    {%- if is_incremental() -%}
    delete from {{ media_states_relation() }}
    where media_id in (select media_id from {{ changed_media_relation() }});
    insert into {{ media_states_relation() }}
    select media_id, media_state from {{ changed_media_relation() }};
    drop table if exists {{ changed_media_relation() }}
    {%- else -%}
    create or replace table {{ media_states_relation() }} as {{ media_state_sql() }}
    {%- endif -%}
{%- endmacro %}

{#- Incremental by media on a state of the model's own (int_observations_per_image,
    int_label_crop_boxes, dim_media): `current_state_sql` gives media_id and `state_column`
    for every media the model has inputs for. The pre-hook stores in <model>__changed the
    media whose current state differs from the stored one (new, changed, or gone: a null
    state), deletes their stored rows; the model builds the media of that table with a state
    (media_to_build below), the post-hook drops it. -#}
{% macro media_rebuild_prepare(current_state_sql, state_column) -%}
    {%- set stored_columns = adapter.get_columns_in_relation(this)
        | map(attribute='name') | map('lower') | list -%}
    {%- if state_column not in stored_columns -%}
    {#- a table built before it kept a state: every media is built again -#}
    alter table {{ this }} add column {{ state_column }} varchar;
    create or replace table {{ changed_media_relation() }} as {{ current_state_sql }};
    delete from {{ this }}
    {%- else -%}
    create or replace table {{ changed_media_relation() }} as
    select
        coalesce(current_state.media_id, stored.media_id) as media_id,
        current_state.{{ state_column }}
    from ({{ current_state_sql }}) as current_state
    full outer join (
        select media_id, any_value({{ state_column }}) as {{ state_column }}
        from {{ this }}
        group by media_id
    ) as stored
        on current_state.media_id = stored.media_id
    where current_state.{{ state_column }} is distinct from stored.{{ state_column }};
    delete from {{ this }} where media_id in (select media_id from {{ changed_media_relation() }})
    {%- endif -%}
{%- endmacro %}

{#- media_id and state of the media to build: every media with inputs on a full build, else
    those media_rebuild_prepare left in <model>__changed with a state. -#}
{% macro media_to_build(current_state_sql, state_column) -%}
    {%- if is_incremental() -%}
        select media_id, {{ state_column }}
        from {{ changed_media_relation() }}
        where {{ state_column }} is not null
    {%- else -%}
        {{ current_state_sql }}
    {%- endif -%}
{%- endmacro %}

{#- What a media's per-image observations read (int_observations_per_image): its counted boxes
    (int_detections_labelled, whose media_state covers the boxes, classifications, reviews,
    flags and counting vars) and its human labels in force (int_human_labels: a whole-image
    label counts on a photo without candidate boxes, which has no media_state). -#}
{% macro observation_state_sql() -%}
    select
        coalesce(labelled.media_id, reviews.media_id) as media_id,
        concat_ws(
            '|', coalesce(labelled.media_state, ''), coalesce(cast(reviews.digest as varchar), '')
        ) as observation_state
    from (
        select media_id, any_value(media_state) as media_state
        from {{ ref('int_detections_labelled') }}
        group by media_id
    ) as labelled
    full outer join (
        select
            media_id,
            {{ rows_digest(
                "label_id", "coalesce(detection_id, '')", "coalesce(category, '')",
                "coalesce(label, '')", "coalesce(cast(individuals as varchar), '')",
                "coalesce(cast(is_false_positive as varchar), '')",
                "coalesce(cast(is_image_label as varchar), '')",
                "coalesce(cast(reviewed_at as varchar), '')"
            ) }} as digest
        from {{ ref('int_human_labels') }}
        group by media_id
    ) as reviews
        on labelled.media_id = reviews.media_id
{%- endmacro %}


{#- A digest of a group of rows (bit_xor of one hash per row): each row's columns are joined
    into one text first, because duckdb's hash(a, b, ...) combines the columns' hashes by xor,
    which the xor over the rows can then cancel (two cameras gaining the same number of empty
    days left a group's digest unchanged). The arguments are SQL expressions of varchar. -#}
{% macro rows_digest() -%}
    bit_xor(hash(concat_ws('|', {{ varargs | join(', ') }})))
{%- endmacro %}
