-- How many individuals a human label counts (Camtrap DP observations' `count`, loaded by
-- flows/formats/camtrapdp_import.py); null: not given (the marts count the photo's boxes, else 1).
alter table raw.media_labels add column if not exists "count" integer;
