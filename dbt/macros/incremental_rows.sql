{#- Tables written as the rows that differ (dim_media, fct_events): every row is computed (the
    inputs are stored tables, cheap to read), and on an incremental build only the rows that are
    not already stored exactly so are written (config incremental_strategy='delete+insert' on
    the table's key): end the model's select with changed_rows_only(). A stored row whose key
    the inputs no longer have is deleted by the post-hook gone_rows_deleted(key, relation).
    Exact by construction: after the build the table holds what a full build writes. -#}
{% macro changed_rows_only() -%}
    {%- if is_incremental() %}
except
select * from {{ this }}
    {%- endif -%}
{%- endmacro %}

{% macro gone_rows_deleted(key, relation) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ key }} not in (select {{ key }} from {{ relation }})
    {%- endif -%}
{%- endmacro %}
