{#- One row per head "train now" registered, newest first by trained_at, with its held-out
    figures (per_class: JSON list of label, precision, recall, f1, support; confusion: JSON
    rows of true labels, columns predicted, in the order of labels) and is_latest for the
    newest. The Label page shows the newest beside the one before it. -#}
{{ config(materialized='view') }}

with

reports as (
    select * from {{ ref('stg_training__head_reports') }}
),

final as (
    select
        *,
        row_number() over (partition by task order by trained_at desc, model_id desc)
            as report_rank,
        row_number() over (partition by task order by trained_at desc, model_id desc) = 1
            as is_latest
    from reports
)

select * from final
