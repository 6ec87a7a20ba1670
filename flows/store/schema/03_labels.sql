-- Human labels that came in with the media or from a file (not the dashboard): a `{species}`
-- folder of the layout, an XMP subject keyword (digiKam, Lightroom, Timelapse), a Timelapse or
-- file,label CSV. Append-only; dbt (int_human_labels) puts them beside the dashboard's reviews,
-- and leaves out a photo whose sources disagree (marts.fct_label_conflicts lists it).
create table if not exists raw.media_labels (
    media_label_id    varchar primary key,   -- md5(media_id, source, label): a re-import adds nothing
    media_id          varchar not null,
    category          varchar not null,      -- animal / person / vehicle / blank
    label             varchar,               -- as the source names it; null for blank
    source            varchar not null,      -- 'folder', 'xmp', 'csv', 'timelapse'
    source_detail     varchar,               -- the path or CSV file (and row) it came from
    run_id            varchar not null,
    imported_at       timestamp not null
);
