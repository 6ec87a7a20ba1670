-- Clock shifts people accepted on the dashboard's Time problems page (marts.fct_time_problems'
-- proposals). Same meaning as raw.clock_shifts: added to the camera's time of every photo of the
-- site and camera ('*' = every camera of the site); int_clock_shifts unions both.
create table if not exists review.clock_shifts (
    shift_id          varchar primary key,   -- uuid
    site_id           varchar not null,
    camera_id         varchar not null,
    shift_months      integer not null,
    shift_days        integer not null,
    shift_micros      bigint not null,
    shift_text        varchar not null,      -- camtrapR's timeShiftTable form: '+0:0:0 12:0:0'
    problem_kind      varchar,               -- the fct_time_problems kind it answers
    accepted_by       varchar not null,
    accepted_at       timestamp not null
);
