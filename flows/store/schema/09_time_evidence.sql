-- Evidence for the clock checks (dbt: int_media_time_evidence, marts.fct_time_problems).
-- Photos stored before these columns existed keep null (unknown).
alter table raw.media add column if not exists is_greyscale boolean;        -- no colour: an IR night photo
alter table raw.media add column if not exists ocr_captured_at timestamp;   -- the info bar's printed time, when read
alter table raw.media add column if not exists file_local_at timestamp;     -- file_modified_at as the ingest machine's wall time
