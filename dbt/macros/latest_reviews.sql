{#- The review that stands for each box (scope='box': partition by detection_id) or for each
    whole image (scope='image': partition by media_id): the latest row of ``reviews`` (a CTE
    of stg_review__labels), ties broken by label_id. One rule for the labelled boxes the
    marts count and for fct_detections, which reads the reviews live. -#}
{% macro latest_reviews(reviews, scope) -%}
    {%- if scope not in ('box', 'image') -%}
        {{ exceptions.raise_compiler_error("latest_reviews: scope must be 'box' or 'image'") }}
    {%- endif -%}
    select * from {{ reviews }}
    where {{ 'not ' if scope == 'box' }}is_image_label
    qualify row_number() over (
        partition by {{ 'detection_id' if scope == 'box' else 'media_id' }}
        order by reviewed_at desc, label_id desc
    ) = 1
{%- endmacro %}
