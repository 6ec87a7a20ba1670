-- What a behaviour head (trapflow train --clips) says about each sampled frame of a clip: one
-- row per frame and head version, the top label. Never a species: raw.classifications keeps
-- those. dbt rolls the frames up into each clip's timeline (marts.fct_clip_timeline).
create table if not exists raw.frame_labels (
    frame_label_id    varchar primary key,   -- md5(media_id, model@version, frame_number)
    media_id          varchar not null,
    frame_number      integer not null,
    frame_time_s      double not null,
    model_name        varchar not null,
    model_version     varchar not null,
    label             varchar not null,
    probability       double not null,
    run_id            varchar not null,
    labelled_at       timestamp not null
);
