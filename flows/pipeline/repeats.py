"""Repeat-detection elimination: boxes that recur at one camera (a rock, a branch) are flagged.

Plain functions, no Prefect. The grouping itself is ``models_ml.repeats``; this module reads
the boxes of the cameras a run touched and keeps raw.detection_flags in step with it.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flows.store import rows
from flows.store import warehouse as _warehouse
from models_ml.repeats import BoxRecord, RepeatParams, find_repeats

__all__ = ["flag_repeats"]


def flag_repeats(warehouse: Path, run_id: str, params: RepeatParams) -> int:
    """Repeat-detection elimination over the warehouse, for the cameras this run touched.

    Every box of those cameras (all runs) is regrouped per (site, camera, model); boxes of
    groups that recur in ``params.min_occurrences`` images get a ``repeat_detection`` row in
    ``raw.detection_flags`` (stale ones are removed). Idempotent; returns the flags now set.
    """
    sql = """
        with cams as (
            select distinct coalesce(site_id, '') as site, coalesce(camera_id, '') as cam
            from raw.media where run_id = ?
        )
        select d.detection_id, d.media_id, d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h,
               d.confidence, d.model_name, cams.site, cams.cam
        from raw.detections d
        join raw.media m using (media_id)
        join cams on coalesce(m.site_id, '') = cams.site and coalesce(m.camera_id, '') = cams.cam
    """
    with _warehouse.connect(warehouse) as con:
        boxes_of = con.execute(sql, [run_id]).fetchall()
        groups: dict[tuple[str, str, str], list[BoxRecord]] = {}
        for det_id, media_id, x, y, w, h, conf, model, site, cam in boxes_of:
            groups.setdefault((site, cam, model), []).append(
                BoxRecord(det_id, media_id, x, y, w, h, conf)
            )
        flags = []
        for (site, cam, model), boxes in sorted(groups.items()):
            flags.extend(find_repeats(boxes, params, key=f"{site}\x1f{cam}\x1f{model}"))
        now = rows.now()
        new = [
            rows.DetectionFlagRow(
                detection_id=f.detection_id, flag="repeat_detection", cluster_id=f.cluster_id,
                occurrences=f.occurrences, detail=f.detail, run_id=run_id, flagged_at=now,
            ).as_row()
            for f in flags
        ]  # fmt: skip
        con.execute("begin transaction")
        try:
            con.register("_scope", _ids([r[0] for r in boxes_of]))
            con.register("_keep", _ids([f.detection_id for f in flags]))
            con.execute(
                "delete from raw.detection_flags where flag = 'repeat_detection' "
                "and detection_id in (select detection_id from _scope) "
                "and detection_id not in (select detection_id from _keep)"
            ).fetchall()
            if new:
                con.register("_flags", _warehouse._table(new, con, "detection_flags"))
                con.execute(
                    "insert or replace into raw.detection_flags by name select * from _flags"
                ).fetchall()
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return len(new)


def _ids(values: list[str]) -> pa.Table:
    return pa.table({"detection_id": pa.array(values, pa.string())})
