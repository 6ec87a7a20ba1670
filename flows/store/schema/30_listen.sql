-- trapflow listen (flows/pipeline/listen.py): the bucket notifications and file-system events it
-- was given, kept as a durable queue, and the ones that failed too often (flows/store/listen_queue.py).
create schema if not exists listen;

create table if not exists listen.events (
    event_id          varchar primary key,   -- md5(source_uri, file_path, sequencer): a redelivery adds nothing
    source_uri        varchar not null,      -- the listened source (as raw.media.source_uri)
    bucket            varchar,               -- the event's bucket; null for a folder's event
    object_key        varchar not null,      -- the key as notified (decoded)
    file_path         varchar,               -- relative to source_uri; null when outside it
    event_name        varchar not null,      -- s3:ObjectCreated:Put, ObjectRemoved:Delete, fs:created
    event_time        timestamp,             -- UTC, as the sender says
    sequencer         varchar,               -- hex: S3's order of the events of one key
    status            varchar not null,      -- pending / done / skipped / stale / ignored / dead
    reason            varchar,               -- skipped: a raw.quarantine reason code (flows/pipeline/quarantine.py)
    attempts          integer not null,
    last_error        varchar,               -- what went wrong last (redacted)
    next_attempt_at   timestamp not null,    -- UTC
    run_id            varchar,               -- the ingest run that took it
    received_at       timestamp not null,    -- UTC
    updated_at        timestamp not null     -- UTC
);

-- Events that failed listen_max_attempts times; `trapflow listen --replay-dead` queues them again.
create table if not exists listen.dead_letters (
    event_id          varchar primary key,
    source_uri        varchar not null,
    object_key        varchar not null,
    file_path         varchar,
    attempts          integer not null,
    reason            varchar not null,      -- the last error (redacted)
    dead_at           timestamp not null,    -- UTC
    replayed_at       timestamp              -- UTC; null until replayed
);
