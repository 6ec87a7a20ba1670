-- The embedding of each crop a species head classified (the embedder's L2-normalised vector),
-- so that a newly trained head can label the stored photos without reading them again
-- (trapflow relabel). crop_key: the detection_id of a box crop, or 'whole_frame'.
create table if not exists raw.crop_embeddings (
    media_id          varchar not null,
    crop_key          varchar not null,
    embedder          varchar not null,      -- model@version of the embedder
    embedding         float[] not null,
    run_id            varchar not null,
    embedded_at       timestamp not null,
    primary key (media_id, crop_key, embedder)
);

-- A short random projection of the embedding (models_ml.similarity.sketch), for the Label
-- page's similar-crop search; added after the table first shipped, filled in by
-- `trapflow embed` (flows/pipeline/embed.py) for rows written before it.
alter table raw.crop_embeddings add column if not exists sketch float[128];
