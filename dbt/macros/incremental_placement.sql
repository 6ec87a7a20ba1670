{#- Incremental placement (int_media_placed). Where and when a stored media was taken changes
    only with the station tables, problem periods or clock shifts (raw media rows are
    immutable), and station_tables_state() is their digest: each stored row keeps the state it
    was placed under, and a build under another state deletes every row (all are placed
    again). An inferred deployment (a camera no station table lists) runs from its camera's
    first to its last photo, so every photo of that camera is inside it whatever new photos
    come: an old row stays exact. -#}
{% macro placement_prepare() -%}
    delete from {{ this }}
    where placement_state is distinct from {{ station_tables_state() }}
{%- endmacro %}
