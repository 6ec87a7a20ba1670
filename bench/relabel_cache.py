"""Re-labelling a warehouse's stored photos from cached crop embeddings, end to end.

    .venv/bin/python bench/relabel_cache.py --detections 100000

A synthetic warehouse (``bench/synthetic_warehouse.py``: about ``--detections`` boxes over
sites and a year) gets one cached embedding per crop the species stage would classify (the
one rule: ``models_ml.classifier.classification_targets``; random unit vectors, 1280-d), and
a species head (8 classes, fitted on random embeddings) is registered in a scratch model folder
beside the real detectors. ``flows.pipeline.relabel.relabel`` then labels every photo from the
cache (the photos' files do not exist: a single read would be an error) and loads the rows.
Prints ONE JSON line: ``relabel_s`` (the whole relabel: query, rule, head, rows, load),
``head_s`` (the head alone over the same embeddings in one batch) and ``ratio`` =
relabel_s / head_s, photos and crops per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_warehouse import generate

from flows.pipeline.inference import WHOLE_FRAME_KEY
from flows.pipeline.relabel import relabel
from flows.settings import load_settings
from flows.store import open_store
from flows.store.warehouse import open_file
from models_ml._types import BBox, Detection
from models_ml.classifier import WHOLE_FRAME, classification_targets
from models_ml.registry import load_manifest
from models_ml.session import create_session
from models_ml.training import EMBEDDER, register_head
from models_ml.training_report import export_head_onnx, fit_head

ANIMAL = "mdlite_yolox_tiny"


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, 1280)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def classified_crops(
    con: duckdb.DuckDBPyConnection, animal_id: str
) -> tuple[int, list[str], list[str]]:
    """(photos, media id and crop key of every crop the species stage would classify): the
    one rule, ``models_ml.classifier.classification_targets``, over the stored boxes."""
    rows = con.execute(
        "select m.media_id, d.detection_id, d.category, d.confidence, d.bbox_x, d.bbox_y,"
        " d.bbox_w, d.bbox_h, d.model_name, d.model_version from raw.media m "
        "left join raw.detections d using (media_id) order by m.media_id, d.detection_id"
    ).fetchall()
    by_media: dict[str, list[tuple]] = {}
    for row in rows:
        by_media.setdefault(row[0], []).append(row)
    keys_m, keys_k = [], []
    for media_id, found in by_media.items():
        dets = [Detection(r[2], r[2], r[3], BBox(r[4], r[5], r[6], r[7]),
                          f"{r[8]}@{r[9]}") for r in found if r[1]]  # fmt: skip
        ids_ = [r[1] for r in found if r[1]]
        for t in classification_targets(dets, 0.2, animal_id):
            whole = t.box is WHOLE_FRAME or t.detection is None
            keys_m.append(media_id)
            keys_k.append(WHOLE_FRAME_KEY if whole else ids_[t.detection])
    return len(by_media), keys_m, keys_k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detections", type=int, default=100_000)
    ap.add_argument("--models", type=Path, default=Path(".trapflow/models"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        wh = Path(tmp) / "w.duckdb"
        generate(wh, args.detections)
        model_dir = Path(tmp) / "models"
        model_dir.mkdir()
        for sub in args.models.absolute().iterdir():
            if sub.is_dir() and sub.name != "trained":
                (model_dir / sub.name).symlink_to(sub)
        x = _unit(rng, 400)
        model = fit_head(x, [f"species_{i % 8}" for i in range(400)])
        out = model_dir / "trained" / "head" / "v1"
        out.mkdir(parents=True)
        head = export_head_onnx(model, out / "head.onnx")
        (out / "labels.txt").write_text("\n".join(map(str, model.classes_)) + "\n")
        register_head(model_dir, "species_head", "1", head, out / "labels.txt")

        with open_file(wh) as con:
            manifest = load_manifest()
            embedder_id = manifest[EMBEDDER].model_id
            photos, keys_m, keys_k = classified_crops(con, manifest[ANIMAL].model_id)
            emb = _unit(rng, len(keys_k))
            table = pa.table({
                "media_id": keys_m, "crop_key": keys_k, "embedder": [embedder_id] * len(keys_k),
                "embedding": pa.array(list(emb), type=pa.list_(pa.float32())),
                "run_id": ["bench"] * len(keys_k),
                "embedded_at": pa.array([0] * len(keys_k), type=pa.timestamp("us")),
            })  # fmt: skip
            con.register("_emb", table)
            con.execute("insert into raw.crop_embeddings by name select * from _emb")
        settings = load_settings(
            warehouse=str(wh), model_dir=str(model_dir), build_marts=False, geofence_file=None
        )
        t0 = time.perf_counter()
        result = relabel(settings, open_store(settings))
        relabel_s = time.perf_counter() - t0
        session = create_session(head)
        t0 = time.perf_counter()
        session.run(None, {session.get_inputs()[0].name: emb})
        head_s = time.perf_counter() - t0
    print(json.dumps({
        "photos": photos, "crops": len(keys_k), "relabelled": result.photos,
        "from_cache": result.from_cache, "unreadable": len(result.unreadable),
        "classifications": result.classifications, "relabel_s": round(relabel_s, 2),
        "head_s": round(head_s, 3), "ratio": round(relabel_s / head_s, 1),
        "photos_per_s": round(result.photos / relabel_s),
        "crops_per_s": round(len(keys_k) / relabel_s),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
