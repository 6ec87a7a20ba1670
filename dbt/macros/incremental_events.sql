{#- Incremental independent events (int_events_grouped). An event is a fold over the sorted
    records of one series (site x category x label), so a new or changed record can move every
    later start of its series but none before it. Each stored event keeps a digest of its
    records (bit_xor of one hash per record: media, time, camera, deployment, individuals,
    and the independence vars). On an incremental build the current records are laid on the
    stored starts (asof); the first stored event of a series whose digest no longer matches
    (a record added, removed, moved by a clock shift, re-counted by a review), or a record
    before the first stored start, is where that series is re-folded from: its events from
    there on are deleted and folded again from the records at or after that start. Events
    before it had exactly the same records, so their starts are the same (the fold is
    sequential), and the stored start is still a start of the new fold in both modes.
    Series no record touched are not re-folded at all. -#}

{% macro event_records_sql() -%}
    {%- set s = population_settings() -%}
    select
        observations.media_id,
        observations.category,
        observations.label,
        observations.individuals,
        observations.is_human,
        placed.site_id,
        placed.camera_id,
        placed.deployment_id,
        placed.captured_at,
        epoch_us(placed.captured_at) as captured_us,
        hash(concat_ws(
            '|', '{{ s.independence_mode }}', '{{ s.independence_us }}', observations.media_id,
            cast(observations.individuals as varchar), cast(observations.is_human as varchar),
            placed.camera_id, placed.deployment_id, cast(epoch_us(placed.captured_at) as varchar)
        )) as record_hash
    from {{ ref('int_observations_per_image') }} as observations
    inner join {{ ref('int_media_placed') }} as placed
        on observations.media_id = placed.media_id
{%- endmacro %}

{% macro events_refold_relation() -%}
    {{ this.database }}.{{ this.schema }}.{{ this.identifier }}__refold
{%- endmacro %}

{#- pre_hook of an incremental build: the records to fold again (<model>__refold: those of the
    series to re-fold at or after the series' re-fold start, from_us), then the stale events of
    those series deleted. The records are computed once, here; the model reads them back. -#}
{% macro events_refold_prepare() -%}
    create or replace table {{ events_refold_relation() }} as
    with
    records as materialized ({{ event_records_sql() }}),
    stored as (
        select site_id, category, label, started_us, event_digest, record_count as n_records
        from {{ this }}
    ),
    laid as (
        select records.site_id, records.category, records.label, records.captured_us,
            records.record_hash, stored.started_us as stored_start
        from records
        asof left join stored
            on records.site_id = stored.site_id
            and records.category = stored.category
            and records.label = stored.label
            and records.captured_us >= stored.started_us
    ),
    current_events as (
        select site_id, category, label, stored_start, bit_xor(record_hash) as event_digest,
            count(*) as n_records
        from laid
        where stored_start is not null
        group by all
    ),
    mismatched as (
        select coalesce(stored.site_id, current_events.site_id) as site_id,
            coalesce(stored.category, current_events.category) as category,
            coalesce(stored.label, current_events.label) as label,
            coalesce(stored.started_us, current_events.stored_start) as from_us
        from stored
        full outer join current_events
            on stored.site_id = current_events.site_id
            and stored.category = current_events.category
            and stored.label = current_events.label
            and stored.started_us = current_events.stored_start
        where stored.event_digest is distinct from current_events.event_digest
            or stored.n_records is distinct from current_events.n_records
        union all
        select site_id, category, label, captured_us as from_us
        from laid
        where stored_start is null
    ),

    refold_from as (
        select site_id, category, label, min(from_us) as from_us
        from mismatched
        group by all
    )
    {#- a left join: a series left with no records from its start still gets its row (its
        stale events must go); such rows have a null media_id -#}
    select refold_from.*, records.* exclude (site_id, category, label)
    from refold_from
    left join records
        on records.site_id = refold_from.site_id
        and records.category = refold_from.category
        and records.label = refold_from.label
        and records.captured_us >= refold_from.from_us;
    delete from {{ this }} as stale
    using (select distinct site_id, category, label, from_us from {{ events_refold_relation() }})
        as refold
    where stale.site_id = refold.site_id
        and stale.category = refold.category
        and stale.label = refold.label
        and stale.started_us >= refold.from_us
{%- endmacro %}
