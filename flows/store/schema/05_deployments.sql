-- Deployments (Camtrap DP-like) from an optional deployments.csv, loaded by flows/store/deployments.py.
-- One row per deployment: a camera at a site between two camera-local times. Where a camera has
-- no row here, the marts infer its deployment from its first and last image (dim_deployments).
create table if not exists raw.deployments (
    deployment_id     varchar primary key,
    site_id           varchar not null,      -- matches raw.media.site_id (the layout's {site})
    camera_id         varchar not null,      -- matches raw.media.camera_id
    deployment_start  timestamp not null,    -- camera-local wall time (an ISO offset is dropped into utc_offset)
    deployment_end    timestamp not null,
    latitude          double,
    longitude         double,
    utc_offset        varchar,               -- '+02:00'; the zone of the camera-local times
    clock_offset_s    double not null default 0,  -- seconds to ADD to the camera's clock to get true local time
    source_file       varchar not null,      -- the CSV the row came from
    source_line       integer not null,
    loaded_at         timestamp not null
);
