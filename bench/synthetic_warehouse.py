"""A synthetic warehouse for the marts: raw.* rows shaped like a real trap network, made in SQL.

    .venv/bin/python bench/synthetic_warehouse.py --detections 1000000 --out /tmp/synth.duckdb

Sites x cameras take bursts of images over a year (animals mostly at night, people by day, some
cameras down for weeks); each image gets 0..4 boxes from MegadetectorLite (animal) or
YOLOX-nano (person, vehicle) with confidences spread around the thresholds, a species
classification for a third of the animal boxes, and a few repeat-detection flags. The same seed
gives the same rows. ``append_new`` adds a fraction of new images after the last one (the
"1 % new" of bench/incremental_build.py). Prints one JSON line with the row counts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import duckdb

from flows.store.warehouse import ensure_schema, open_file

SPECIES = ["impala", "zebra", "elephant", "buffalo", "giraffe", "warthog", "hyena", "lion",
           "leopard", "baboon", "dik-dik", "waterbuck"]  # fmt: skip


def _insert_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    first_image: int,
    images: int,
    start: str,
    days: int,
    sites: int,
    cameras: int,
    seed: float,
    run_id: str,
) -> None:
    """Images first_image .. first_image + images - 1 and their boxes, labels and flags."""
    con.execute(f"select setseed({seed})")
    width = max(2, len(str(sites - 1)))  # site-07, or site-007 with 100+ sites
    species = ", ".join(f"'{s}'" for s in SPECIES)
    con.execute(
        f"""
        create or replace temp table _img as
        select
            i,
            md5('media-' || i) || md5('x-' || i) as media_id,
            'site-' || lpad(cast(i % {sites} as varchar), {width}, '0') as site_id,
            'cam-' || cast((i // {sites}) % {cameras} as varchar) as camera_id,
            timestamp '{start}'
                + to_microseconds(cast(random() * {days} * 86400e6 as bigint)) as captured_at,
            random() as r
        from range({first_image}, {first_image + images}) as t(i)
        """
    )
    # cameras down: camera 0 of every 5th site takes no images for days 100-130 (rows dropped)
    con.execute(
        f"""
        delete from _img where camera_id = 'cam-0'
          and cast(substr(site_id, 6) as integer) % 5 = 0
          and captured_at between timestamp '{start}' + interval 100 days
                              and timestamp '{start}' + interval 130 days
        """
    )
    con.execute(
        f"""
        insert or ignore into raw.media (media_id, source_uri, file_path, file_name,
            file_extension, file_size, media_type, image_format, site_id, camera_id,
            captured_at, timestamp_source, run_id, ingested_at)
        select media_id, '/synthetic', site_id || '/' || camera_id || '/' || i || '.jpg',
            i || '.jpg', 'jpg', 250000, 'image', 'JPEG', site_id, camera_id, captured_at,
            'exif', '{run_id}', now()::timestamp
        from _img
        """
    )
    # boxes: ~2 per image; 80% animal (MDLite), 12% person, 8% vehicle (YOLOX-nano)
    con.execute(
        """
        create or replace temp table _box as
        select
            _img.media_id, _img.i, b,
            case when random() < 0.80 then 'animal' when random() < 0.6 then 'person'
                 else 'vehicle' end as category,
            0.05 + random() * 0.95 as confidence
        from _img, range(0, cast(floor(_img.r * 4.01) as bigint)) as t(b)
        """
    )
    con.execute(
        f"""
        insert or ignore into raw.detections (detection_id, media_id, model_name, model_version,
            category, category_id, label, confidence, bbox_x, bbox_y, bbox_w, bbox_h,
            frame_number, run_id, detected_at)
        select md5(media_id || '|' || b) as detection_id, media_id,
            case category when 'animal' then 'mdlite_yolox_tiny' else 'yolox_nano_coco' end,
            case category when 'animal' then '20220528' else '0.1.1rc0' end,
            category, case category when 'animal' then 1 when 'person' then 2 else 3 end,
            case category when 'animal' then 'animal' when 'person' then 'person'
                 else (['car', 'truck', 'motorcycle'])[1 + (i % 3)] end,
            confidence, 0.1, 0.1, 0.3, 0.3, null, '{run_id}', now()::timestamp
        from _box
        """
    )
    con.execute(
        f"""
        insert or ignore into raw.classifications
        select md5(detection_id || '|cls') as classification_id, detection_id, media_id,
            'species_head', '1',
            ([{species}])[1 + cast(hash(detection_id || 'sp') % {len(SPECIES)} as int)],
            0.3 + (hash(detection_id || 'p') % 1000) / 1000.0 * 0.7, 1,
            case when hash(detection_id || 'g') % 100 < 5 then 'rolled_up' else 'allowed' end,
            '{run_id}', now()::timestamp
        from raw.detections
        where run_id = '{run_id}' and category = 'animal' and hash(detection_id || 'c') % 100 < 33
        """
    )
    con.execute(
        f"""
        insert or ignore into raw.detection_flags
        select detection_id, 'repeat_detection', 'cluster-' || (hash(media_id) % 100), 5, null,
            '{run_id}', now()::timestamp
        from raw.detections
        where run_id = '{run_id}' and hash(detection_id || 'f') % 100 < 1
        """
    )


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    out = {}
    for table in ("media", "detections", "classifications", "detection_flags"):
        row = con.execute(f"select count(*) from raw.{table}").fetchone()
        out[table] = int(row[0]) if row else 0
    return out


def generate(
    path: Path, detections: int, *, sites: int = 20, cameras: int = 3, days: int = 365,
    seed: float = 0.42,
) -> dict[str, Any]:  # fmt: skip
    """A new warehouse at `path` with about `detections` boxes (about 1.5 per image)."""
    path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with open_file(path) as con:
        con.execute("set enable_progress_bar = false")
        ensure_schema(con)
        _insert_batch(
            con, first_image=0, images=max(1, int(detections / 1.45)), start="2024-01-01",
            days=days, sites=sites, cameras=cameras, seed=seed, run_id="synthetic-0",
        )  # fmt: skip
        counts = _counts(con)
    return {"warehouse": str(path), "seconds": round(time.perf_counter() - t0, 2), **counts}


def append_new(path: Path, fraction: float, *, sites: int = 20, cameras: int = 3) -> dict[str, Any]:
    """Add `fraction` x the existing images as new ones, dated in the 7 days after the last."""
    with open_file(path) as con:
        con.execute("set enable_progress_bar = false")
        row = con.execute("select count(*), max(captured_at) from raw.media").fetchone()
        existing, last = (int(row[0]), row[1]) if row else (0, None)
        first = int(existing * 3)  # past every index used so far
        _insert_batch(
            con, first_image=first, images=max(1, int(existing * fraction)),
            start=str(last), days=7, sites=sites, cameras=cameras, seed=0.17,
            run_id=f"synthetic-{first}",
        )  # fmt: skip
        return {"added_images": max(1, int(existing * fraction)), **_counts(con)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--out", type=Path, default=Path(".trapflow/synthetic.duckdb"))
    args = parser.parse_args()
    result = generate(
        args.out, args.detections, sites=args.sites, cameras=args.cameras, days=args.days
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
