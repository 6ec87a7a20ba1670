"""The Label page's loop at scale: latency per label at ~100k boxes, then "train now".

    .venv/bin/python bench/label_loop.py [--detections 100000] [--labels 20] [--train 1000]

A synthetic warehouse (``bench/synthetic_warehouse.py``) gets one cached embedding per crop the
species stage would classify (the one rule, as bench/relabel_cache.py), drawn around 40
"species" centres so similar crops exist, with their sketches (models_ml/similarity.py); the
marts are built once (``dbt build``). Then, as the page does it:

* **per label** (``--labels`` times): one review per box of the screen's group
  (dashboard/queries.py ``write_reviews``), the caches cleared, and the next screen read (the
  queue's head, its similar crops and the counts: dashboard/labelling.py ``screen``; the
  people to blur: ``people``): ``label_ms`` is that whole round trip (median and worst);
  ``sketch_search_ms``, the group search alone on the sketches, ``exact_search_ms`` the same
  search on the full 1280-d embeddings (the baseline), ``ratio_search`` = sketch / exact;
* **train now**: ``--train`` crops labelled (their centre's species), then
  ``flows.pipeline.train_now``'s fit step (read the labelled cached embeddings from
  marts.fct_training_crops, balance, split by burst, fit, evaluate, export ONNX, register,
  record the report): ``train_s``; and the whole train now (that, then re-labelling every
  stored photo from cached embeddings and ``dbt build``): ``train_now_s``, with
  ``relabel_s`` and ``marts_s`` of it.

Prints ONE JSON line. The photos' files do not exist: any read would be an error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relabel_cache import classified_crops
from synthetic_warehouse import generate

from dashboard import labelling, queries, reviews
from flows.pipeline.train_now import record_report, train_now, training_examples
from flows.settings import load_settings
from flows.store import open_store
from flows.store.dbt import run_dbt
from flows.store.warehouse import open_file
from models_ml import training
from models_ml.registry import load_manifest
from models_ml.similarity import SKETCH_DIM, sketch

ANIMAL = "mdlite_yolox_tiny"
CENTRES = 40


def _embed(wh: Path, rng: np.random.Generator) -> int:
    """Cached embeddings (and sketches) for every crop the one rule picks; returns crops."""
    manifest = load_manifest()
    animal_id, embedder = manifest[ANIMAL].model_id, manifest[training.EMBEDDER].model_id
    with open_file(wh) as con:
        _, keys_m, keys_k = classified_crops(con, animal_id)
        centres = rng.normal(size=(CENTRES, 1280))
        which = rng.integers(0, CENTRES, size=len(keys_k))
        x = centres[which] + rng.normal(scale=0.45, size=(len(keys_k), 1280))
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
        table = pa.table({
            "media_id": keys_m, "crop_key": keys_k, "embedder": [embedder] * len(keys_k),
            "embedding": pa.array(list(x), type=pa.list_(pa.float32())),
            "sketch": pa.array(list(sketch(x)), type=pa.list_(pa.float32(), SKETCH_DIM)),
            "run_id": ["bench"] * len(keys_k),
            "embedded_at": pa.array([0] * len(keys_k), type=pa.timestamp("us")),
            "centre": which.astype(np.int32),
        })  # fmt: skip
        con.register("_emb", table)
        con.execute("insert into raw.crop_embeddings by name select * exclude (centre) from _emb")
        con.execute(
            "create table main.bench_centres as select media_id, crop_key, centre from _emb"
        )
    return len(keys_k)


def _search(wh: str, detection_id: str, limit: int, min_sim: float, *, exact: bool) -> float:
    """One group search on its own: on the sketches (as the page does), or on the full
    1280-d embeddings (the baseline)."""
    if exact:
        sql = (
            "with target as (select c.embedder, e.embedding from marts.fct_label_crops as c "
            "join marts.fct_crop_embeddings as e using (media_id, crop_key, embedder) "
            "where c.detection_id = ? limit 1) "
            "select c.detection_id, list_cosine_similarity(e.embedding, t.embedding) as s "
            "from marts.fct_label_crops as c join marts.fct_crop_embeddings as e "
            "using (media_id, crop_key, embedder), target as t where c.embedder = t.embedder "
            "and not c.is_labelled and c.detection_id != ? and s >= ? order by s desc limit ?"
        )
    else:
        sql = (
            "with target as (select embedder, sketch from marts.fct_label_crops "
            "where detection_id = ?) select c.detection_id, array_inner_product(c.sketch, "
            "t.sketch) as s from marts.fct_label_crops as c, target as t "
            "where c.embedder = t.embedder and not c.is_labelled and c.detection_id != ? "
            "and s >= ? order by s desc limit ?"
        )
    t0 = time.perf_counter()
    queries._read(wh, sql, [detection_id, detection_id, min_sim, limit])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detections", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=20)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--models", type=Path, default=Path(".trapflow/models"))
    ap.add_argument("--out", type=Path, help="Keep the warehouse here (default: a temp file).")
    ap.add_argument("--only-build", action="store_true", help="Stop after the first build.")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"detections": args.detections}
    with tempfile.TemporaryDirectory() as tmp:
        wh = args.out or Path(tmp) / "w.duckdb"
        generate(wh, args.detections)
        out["crops"] = _embed(wh, rng)
        model_dir = Path(tmp) / "models"
        model_dir.mkdir()
        for sub in args.models.absolute().iterdir():
            if sub.is_dir() and sub.name != "trained":
                (model_dir / sub.name).symlink_to(sub)
        settings = load_settings(warehouse=str(wh), model_dir=str(model_dir), geofence_file=None)
        store = open_store(settings)
        t0 = time.perf_counter()
        run_dbt(settings, "build", store=store)
        out["first_build_s"] = round(time.perf_counter() - t0, 1)
        if args.only_build:
            print(json.dumps(out))
            return

        w, sim, group_max = str(wh), 0.75, 16
        rounds, exact, sketched, write_s, screen_s, boxes = [], [], [], [], [], []
        now = labelling.screen(w, None, (), sim, group_max)
        for i in range(args.labels):
            t0 = time.perf_counter()
            item = now.head.iloc[0]
            ids_ = [(str(item["media_id"]), str(item["detection_id"]))]
            ids_ += [(str(g.media_id), str(g.detection_id)) for g in now.group.itertuples()]
            t1 = time.perf_counter()
            reviews.write_reviews(
                w, [reviews.Review(m, d, "animal", f"species_{i % 8}") for m, d in ids_],
                reviewer="bench",
            )  # fmt: skip
            write_s.append(time.perf_counter() - t1)
            labelling.clear()
            t1 = time.perf_counter()
            now = labelling.screen(w, None, (), sim, group_max)  # the next screen
            screen_s.append(time.perf_counter() - t1)
            media = (str(now.head.iloc[0]["media_id"]), *map(str, now.group["media_id"]))
            labelling.people(w, tuple(sorted(set(media))))
            rounds.append(time.perf_counter() - t0)
            boxes.append(len(ids_))
            exact.append(_search(w, str(item["detection_id"]), group_max, sim, exact=True))
            sketched.append(_search(w, str(item["detection_id"]), group_max, sim, exact=False))
        ms = [r * 1000 for r in rounds]
        out.update(
            labels=args.labels, boxes_per_label=round(statistics.mean(boxes), 1),
            label_ms_median=round(statistics.median(ms)), label_ms_max=round(max(ms)),
            write_ms=round(statistics.median(write_s) * 1000),
            screen_ms=round(statistics.median(screen_s) * 1000),
            sketch_search_ms=round(statistics.median(sketched) * 1000),
            exact_search_ms=round(statistics.median(exact) * 1000),
            ratio_search=round(statistics.median(sketched) / statistics.median(exact), 3),
        )  # fmt: skip

        # train now on --train labelled crops (each its centre's species)
        with open_file(wh) as con:
            picked = con.execute(
                "select c.media_id, c.detection_id, 'species_' || cast(b.centre % 8 as varchar) "
                "from marts.fct_label_crops c join main.bench_centres b "
                "on b.media_id = c.media_id and (b.crop_key = c.detection_id or "
                "(c.is_whole_frame_crop and b.crop_key = 'whole_frame')) "
                "where not c.is_labelled order by hash(c.detection_id) limit ?",
                [args.train + 100],
            ).fetchall()
        first, later = picked[: args.train], picked[args.train :]
        reviews.write_reviews(
            w, [reviews.Review(m, d, "animal", s) for m, d, s in first], reviewer="bench"
        )
        t0 = time.perf_counter()
        embedder = load_manifest()[training.EMBEDDER].model_id
        examples = training_examples(store, embedder, "burst")
        cfg = training.TrainingConfig(burst_gap_s=settings.independence_minutes * 60.0)
        result = training.fit_examples(
            examples, cfg=cfg, model_dir=model_dir, out_root=model_dir / "trained",
            name="species_head", embedder_id=embedder, detector_id="stored boxes",
            fingerprint_key=embedder,
        )  # fmt: skip
        record_report(store, result, embedder)
        out["train_crops"] = len(examples.labels)
        out["train_s"] = round(time.perf_counter() - t0, 2)
        out["train_accuracy"] = round(result.evaluation.accuracy, 3)
        # the whole train now (another version: more labels), relabel and marts included
        reviews.write_reviews(
            w, [reviews.Review(m, d, "animal", s) for m, d, s in later], reviewer="bench"
        )
        t0 = time.perf_counter()
        done = train_now(settings, store)
        out["train_now_s"] = round(time.perf_counter() - t0, 1)
        relabelled = done.relabelled
        out.update(
            relabel_s=round(relabelled.seconds, 1) if relabelled else None,
            relabelled_photos=relabelled.photos if relabelled else 0,
            relabel_from_cache=relabelled.from_cache if relabelled else 0,
            marts_s=round(done.marts_s, 1),
            trained_again=done.trained is not None,
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
