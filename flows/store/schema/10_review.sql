-- What people say. The dashboard writes here; the marts let it win over every model.
create schema if not exists review;

create table if not exists review.labels (
    label_id          varchar primary key,   -- uuid
    media_id          varchar not null,
    detection_id      varchar,               -- null: a label for the whole image
    category          varchar,               -- animal / person / vehicle / blank
    label             varchar,               -- species (or 'person', 'car', ...); null when only a false positive is marked
    is_false_positive boolean not null default false,
    count             integer,               -- individuals, when the reviewer counted them
    reviewer          varchar not null,
    reviewed_at       timestamp not null,
    note              varchar
);
