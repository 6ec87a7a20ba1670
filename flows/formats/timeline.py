"""``trapflow export timeline``: each clip's behaviour timeline as JSON.

From the marts only (``fct_clip_timeline``: segments that cover the clip; ``fct_clip_frames``:
every sampled frame's label), one entry per clip and behaviour head::

    {"format": "trapflow-timeline", "version": 1, "clips": [
      {"media_id": "...", "file_path": "S1/CAM/clip.mp4", "site_id": "S1",
       "model": "behaviour_head@2", "duration_s": 60.0,
       "segments": [{"label": "feeding", "start_s": 0.0, "end_s": 12.0, "confidence": 0.91}],
       "frames": [{"frame_number": 0, "time_s": 0.0, "label": "feeding", "probability": 0.93}]}]}

Plain functions, no Prefect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.formats.common import ExportError, fetch, has_relation, now_utc, require_marts
from flows.store import warehouse as _warehouse

__all__ = ["export_timeline"]


def export_timeline(warehouse: Path, out: Path) -> int:
    """Write the JSON; returns how many clip timelines it holds."""
    require_marts(warehouse)
    with _warehouse.connect(warehouse, read_only=True) as con:
        if not has_relation(con, "marts", "fct_clip_timeline"):
            raise ExportError("the marts predate clip timelines: run 'trapflow marts' first")
        segments = fetch(
            con,
            "select *, max(end_s) over (partition by media_id, model_name) as duration_s "
            "from marts.fct_clip_timeline order by file_path, model_name, segment_number",
        )
        frames = fetch(
            con,
            "select * from marts.fct_clip_frames order by media_id, model_name, frame_number",
        )
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for s in segments:
        clip = by_key.setdefault(
            (s["media_id"], s["model_name"]),
            {
                "media_id": s["media_id"], "file_path": s["file_path"], "site_id": s["site_id"],
                "model": f"{s['model_name']}@{s['model_version']}", "duration_s": s["duration_s"],
                "segments": [], "frames": [],
            },
        )  # fmt: skip
        clip["segments"].append(
            {"label": s["label"], "start_s": s["start_s"], "end_s": s["end_s"],
             "confidence": s["confidence"], "frames": s["frames"]}
        )  # fmt: skip
    for f in frames:
        entry = by_key.get((f["media_id"], f["model_name"]))
        if entry is not None:
            entry["frames"].append(
                {"frame_number": f["frame_number"], "time_s": f["frame_time_s"],
                 "label": f["label"], "probability": f["probability"]}
            )  # fmt: skip
    doc = {
        "format": "trapflow-timeline",
        "version": 1,
        "exported_at": now_utc().isoformat(timespec="seconds") + "Z",
        "clips": list(by_key.values()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    return len(by_key)
