-- Station tables as ecologists keep them (camtrapR CTtable, Camtrap DP deployments.csv), loaded by
-- flows/store/station_tables.py and flows/store/deployments.py; camtrapR timeShiftTable rows by
-- flows/store/time_shifts.py. Raw keeps what the table says; dbt applies camtrapR's effort rule
-- (int_deployments_unioned, int_deployment_problems, int_camera_operation_daily).

-- A deployment's extra facts. camera_id '*' (in raw.deployments) = every camera of the station:
-- a CTtable without a camera column (camtrapR: one camera per station).
alter table raw.deployments add column if not exists session_id varchar;
alter table raw.deployments add column if not exists timezone varchar;   -- IANA name, e.g. 'Asia/Kuching'
alter table raw.deployments add column if not exists start_is_date boolean default false;  -- a date without a time
alter table raw.deployments add column if not exists end_is_date boolean default false;
-- the table had ProblemX columns: it says when the camera was down, so no downtime is inferred
alter table raw.deployments add column if not exists problems_listed boolean default false;
alter table raw.deployments add column if not exists station_x double;   -- the table's own coordinates
alter table raw.deployments add column if not exists station_y double;
alter table raw.deployments add column if not exists station_crs varchar;  -- e.g. 'EPSG:32650'

-- Problem periods (camtrapR ProblemX_from / ProblemX_to): the camera did not work.
create table if not exists raw.deployment_problems (
    deployment_id     varchar not null,
    problem_number    integer not null,      -- X of ProblemX_from
    problem_from      timestamp not null,    -- as written; a date alone is 00:00 with from_is_date
    problem_to        timestamp not null,    -- as written; a date alone is 00:00 with to_is_date
    from_is_date      boolean not null,
    to_is_date        boolean not null,
    source_file       varchar not null,
    source_line       integer not null,
    loaded_at         timestamp not null,
    primary key (deployment_id, problem_number)
);

-- Clock shifts (camtrapR timeShiftTable, or seconds): added to the camera's times of every photo
-- of the site (and camera; '*' = every camera of the site). A calendar interval, so '1:0:0 0:0:0'
-- with sign '-' is one calendar year back, as exiftool's AllDates shift does.
create table if not exists raw.clock_shifts (
    site_id           varchar not null,
    camera_id         varchar not null,      -- '*' = every camera of the site
    shift             interval not null,
    shift_months      integer not null,      -- the interval's parts, to add shifts up
    shift_days        integer not null,
    shift_micros      bigint not null,
    shift_text        varchar not null,      -- as written: '-1:0:0 0:0:0' or '-3600 s'
    source_file       varchar not null,
    source_line       integer not null,
    loaded_at         timestamp not null,
    primary key (site_id, camera_id, source_file)
);
