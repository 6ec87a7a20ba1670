-- What the models say beyond boxes. Raw is append-only: flags and labels sit beside the boxes.

-- Species (or any finer label) for one detection from one classifier, top-k per detection.
create table if not exists raw.classifications (
    classification_id varchar primary key,   -- md5(detection_id, model, rank)
    detection_id      varchar not null,
    media_id          varchar not null,
    model_name        varchar not null,      -- e.g. a trained head 'species_head' or a user ONNX
    model_version     varchar not null,
    label             varchar not null,      -- species label as the classifier names it
    probability       double not null,
    rank              integer not null,      -- 1 = top
    geofence_status   varchar not null,      -- 'allowed', 'rolled_up' (outside the site's list), 'no_list'
    run_id            varchar not null,
    classified_at     timestamp not null
);

-- Boxes marked, never deleted: repeat-detection elimination (static false positives), etc.
create table if not exists raw.detection_flags (
    detection_id      varchar not null,
    flag              varchar not null,      -- 'repeat_detection'
    cluster_id        varchar,               -- the group of near-identical boxes at one camera
    occurrences       integer,               -- how many images the box recurs in
    detail            varchar,
    run_id            varchar not null,
    flagged_at        timestamp not null,
    primary key (detection_id, flag)
);
