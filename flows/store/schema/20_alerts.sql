-- Alerts: an outbox written by the rules after each run and drained by delivery (flows/alerts/engine.py).
-- No URL or token is ever stored here: an alert names its channels; URLs come from the settings.
create schema if not exists alerts;

create table if not exists alerts.outbox (
    alert_id          varchar primary key,   -- md5 of rule, kind and what triggered it: queueing twice adds nothing
    rule_name         varchar not null,
    rule_kind         varchar not null,      -- human / label / population / silent / digest / test
    kind              varchar not null,      -- 'alert' (first of a burst), 'summary' (the rest of it), 'anomaly', 'silent' (a camera's silence episode), 'digest' (a channel's day)
    site_id           varchar,
    camera_id         varchar,
    media_id          varchar,               -- the image shown (first of the burst)
    anchor_id         varchar,               -- summary: the alert_id of the burst's first alert
    event_at          timestamp,             -- camera-local time of the (first) image
    event_until       timestamp,             -- summary: camera-local time of the last image
    media_count       integer not null,      -- images this message covers
    title             varchar not null,
    body              varchar not null,      -- markdown, user text escaped
    thumbnail         blob,                  -- JPEG, resized, boxes drawn
    channels          varchar not null,      -- ','-joined channel names (never URLs)
    status            varchar not null,      -- pending / sent / failed
    attempts          integer not null,
    last_error        varchar,               -- redacted
    next_attempt_at   timestamp not null,    -- UTC; backoff
    run_id            varchar,
    created_at        timestamp not null,    -- UTC
    sent_at           timestamp              -- UTC, when every target took it
);

-- One row per alert and target URL that took it, so a retry never resends to a target that has it.
create table if not exists alerts.deliveries (
    alert_id          varchar not null,
    target_key        varchar not null,      -- sha256 of the URL, first 16 hex (never the URL)
    target_name       varchar not null,      -- redacted URL, e.g. 'json://127.0.0.1:8000/...'
    delivered_at      timestamp not null,    -- UTC
    primary key (alert_id, target_key)
);

-- What a digest channel (alert_channel_options.NAME.digest) collects instead of one message per
-- photo: one row per alert (or image of a burst) and channel, gathered into one 'digest' outbox
-- row per channel and UTC day once the day is over (flows/alerts/digest.py).
create table if not exists alerts.digest_items (
    item_id           varchar primary key,   -- ids.digest_item_id(channel, alert or image id)
    channel           varchar not null,
    day               date not null,         -- UTC day the item was queued
    item_kind         varchar not null,      -- photo / silent
    rule_name         varchar not null,
    site_id           varchar,
    camera_id         varchar,
    media_id          varchar,
    label             varchar,               -- photo: the label that matched ('person' for people)
    event_at          timestamp,             -- camera-local time of the photo (silent: last photo)
    created_at        timestamp not null     -- UTC
);
