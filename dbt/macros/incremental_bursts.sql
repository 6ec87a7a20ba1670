{#- Incremental bursts (int_media_bursts). A camera's bursts are a fold over its photos in time
    order, so a new photo can renumber the bursts from the one it lands in to the camera's last,
    but none before it. Raw media rows are immutable (a photo's camera and time never change),
    and every stored row keeps the gap it was numbered with (bursts_state): a build with
    another independence_minutes numbers every photo again. -#}
{% macro bursts_state() -%}
    '{{ population_settings().independence_us }}'
{%- endmacro %}

{% macro bursts_renumber_relation() -%}
    {{ this.database }}.{{ this.schema }}.{{ this.identifier }}__renumber
{%- endmacro %}

{#- pre_hook of an incremental build. Per camera with new dated photos: from_at = the start of
    the stored burst the earliest new photo lands in (the earliest new photo itself when it is
    before every stored one), and the burst numbers kept before it (<model>__renumber); then
    the camera's stored rows at or after from_at are deleted, so the model numbers them again
    with the new photos, continuing from the kept numbers. The row before from_at is at least
    the gap before it (from_at started a burst), so from_at starts one again. -#}
{% macro bursts_renumber_prepare() -%}
    {%- set stored_columns = adapter.get_columns_in_relation(this)
        | map(attribute='name') | map('lower') | list -%}
    {%- if 'bursts_state' not in stored_columns -%}
    {#- a table built before it kept its numbers: every photo is numbered again -#}
    alter table {{ this }} add column burst_number bigint;
    alter table {{ this }} add column bursts_state varchar;
    {%- endif %}
    delete from {{ this }} where bursts_state is distinct from {{ bursts_state() }};
    create or replace table {{ bursts_renumber_relation() }} as
    with
    new_photos as (
        select site_id, camera_id, min(captured_at) as first_new_at
        from {{ ref('stg_pipeline__media') }}
        where media_type = 'image'
            and captured_at is not null
            and media_id not in (select media_id from {{ this }})
        group by all
    ),
    starts as (
        {#- the stored bursts of the cameras with new photos only: a poll of one card reads
            one camera's rows, a build with nothing new none -#}
        select stored.site_id, stored.camera_id, stored.burst_number,
            min(stored.captured_at) as started_at
        from {{ this }} as stored
        semi join new_photos
            on stored.site_id = new_photos.site_id
            and stored.camera_id = new_photos.camera_id
        where stored.captured_at is not null
        group by all
    )
    select
        new_photos.site_id,
        new_photos.camera_id,
        coalesce(max(starts.started_at), new_photos.first_new_at) as from_at,
        coalesce(max(starts.burst_number) - 1, 0) as numbers_kept
    from new_photos
    left join starts
        on new_photos.site_id = starts.site_id
        and new_photos.camera_id = starts.camera_id
        and starts.started_at <= new_photos.first_new_at
    group by new_photos.site_id, new_photos.camera_id, new_photos.first_new_at;
    delete from {{ this }} as stale
    using {{ bursts_renumber_relation() }} as renumber
    where stale.site_id = renumber.site_id
        and stale.camera_id = renumber.camera_id
        and stale.captured_at >= renumber.from_at
{%- endmacro %}
