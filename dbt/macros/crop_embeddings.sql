{#- Which cached embedding a box's crop has: the box's own (crop_key = its detection_id), else
    its photo's whole frame (the one classification rule classifies a photo on its whole frame
    when no box reaches classification_min_confidence). The joins, aliased `own` and `whole`:
    read a column as coalesce(own.x, whole.x). One rule for the Label page's crops
    (int_label_crops) and for what a box's label trains (fct_training_crops). -#}
{% macro box_crop_embedding_joins(boxes, embeddings) -%}
    left join {{ embeddings }} as own
        on {{ boxes }}.detection_id = own.detection_id
    left join {{ embeddings }} as whole
        on
            {{ boxes }}.media_id = whole.media_id
            and whole.is_whole_frame
            and own.media_id is null
{%- endmacro %}
