-- The raw layer: what the flows write. dbt reads it through sources (dbt/models/staging/pipeline).
-- Identity of a media file is its SHA-256: a copy or a renamed file is the same media row.
create schema if not exists raw;

create table if not exists raw.media (
    media_id          varchar primary key,   -- SHA-256 of the file's bytes (hex)
    source_uri        varchar not null,      -- the polled root: /abs/dir or s3://bucket/prefix
    file_path         varchar not null,      -- first path seen, relative to source_uri, '/'-separated
    file_name         varchar not null,
    file_extension    varchar not null,      -- lower case, no dot
    file_size         bigint not null,
    file_modified_at  timestamp,             -- mtime from the file system (UTC)
    media_type        varchar not null,      -- 'image' (video later)
    image_format      varchar,               -- what the bytes are: JPEG, PNG, TIFF (not the extension)
    site_id           varchar not null,
    camera_id         varchar not null,
    captured_at       timestamp,             -- camera-local wall time (EXIF has no zone); sub-seconds kept
    utc_offset        varchar,               -- '+02:00' when the camera wrote OffsetTime*, else null
    timestamp_source  varchar not null,      -- 'exif' or 'mtime'
    timestamp_tag     varchar,               -- DateTimeOriginal / DateTimeDigitized / DateTime
    latitude          double,                -- signed decimal degrees
    longitude         double,
    altitude          double,                -- metres
    camera_make       varchar,
    camera_model      varchar,
    camera_serial     varchar,
    width             integer,               -- as stored (before EXIF orientation)
    height            integer,
    orientation       integer,
    exif_warnings     varchar,               -- '; '-joined reasons a field was dropped, else null
    run_id            varchar not null,
    ingested_at       timestamp not null
);

create table if not exists raw.detections (
    detection_id      varchar primary key,   -- md5(media_id, model, box index): stable across re-runs
    media_id          varchar not null,
    model_name        varchar not null,
    model_version     varchar not null,
    category          varchar not null,      -- animal / person / vehicle (MegaDetector categories)
    category_id       integer not null,      -- 1 / 2 / 3
    label             varchar not null,      -- the model's own class: 'animal', 'person', 'car', 'dog', ...
    confidence        double not null,       -- every box >= the inference floor is kept
    bbox_x            double not null,       -- normalised [x_min, y_min, width, height]
    bbox_y            double not null,
    bbox_w            double not null,
    bbox_h            double not null,
    frame_number      integer,               -- videos (later); null for stills
    run_id            varchar not null,
    detected_at       timestamp not null
);

create table if not exists raw.quarantine (
    quarantine_id     varchar primary key,   -- md5(source_uri, file_path, sha256, reason)
    source_uri        varchar not null,
    file_path         varchar not null,
    media_id          varchar,               -- SHA-256 when the bytes could be read
    file_size         bigint,
    reason            varchar not null,      -- short code: empty_file, truncated, not_an_image, ...
    error             varchar not null,      -- what went wrong and what to do
    action            varchar not null,      -- 'skipped' (not processed) or 'processed' (kept, with a warning)
    run_id            varchar not null,
    quarantined_at    timestamp not null
);

create table if not exists raw.runs (
    run_id            varchar primary key,
    flow_run_id       varchar,               -- Prefect's id when run as a flow
    source_uri        varchar not null,
    started_at        timestamp not null,
    finished_at       timestamp,
    status            varchar not null,      -- running / completed / failed
    files_listed      integer,
    files_new         integer,
    images_processed  integer,
    duplicates        integer,               -- new paths whose bytes were already known
    detections        integer,
    quarantined       integer,
    warnings          integer,
    model_versions    varchar,               -- 'name@version, ...'
    duration_s        double,
    list_s            double,
    read_s            double,
    detect_s          double,
    load_s            double,
    marts_s           double
);

-- Every path ever seen under a source, so a poll only reads files that are new or changed.
create table if not exists raw.media_files (
    source_uri        varchar not null,
    file_path         varchar not null,
    file_size         bigint not null,
    file_modified_at  timestamp,
    media_id          varchar,               -- null when the file could not be read
    status            varchar not null,      -- ingested / duplicate / quarantined
    run_id            varchar not null,
    seen_at           timestamp not null,
    primary key (source_uri, file_path)
);
