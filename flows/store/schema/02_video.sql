-- Video clips (models_ml/video.py): metadata on raw.media, the sampled frame on each box.
-- raw.media.media_type is 'video' for clips; image_format holds the codec in upper case.
alter table raw.media add column if not exists duration_s double;        -- clip length (seconds)
alter table raw.media add column if not exists fps double;               -- average frame rate
alter table raw.media add column if not exists frame_count integer;      -- frames in the clip
alter table raw.media add column if not exists frames_sampled integer;   -- frames run through the detectors
alter table raw.media add column if not exists codec varchar;            -- h264, mpeg4, msmpeg4, ...
alter table raw.media add column if not exists container_format varchar; -- FFmpeg's format name
-- seconds from the start of the clip of the frame the box is on (null for stills)
alter table raw.detections add column if not exists frame_time_s double;
