"""INT8 against FP32 MegadetectorLite on held-out photos: speed and agreement.

    .venv/bin/python bench/int8.py --images ../shared/data/camtrap

Quantises the detector (``models_ml.quantize.quantize_detector``, the options below, the
defaults those of ``trapflow models quantize``) into a temporary folder, calibrated on the
calibration split of ``--images`` (``models_ml.quantize.is_calibration``: a hash of each
path), then on the **held-out** photos only (the others) prints ONE JSON line:

* ``fp32_ips``, ``int8_ips``, ``speedup``: images/s of the bare detector calls (preprocessed
  beforehand, ``--batch`` photos per call, as many loops side by side as the pipeline has
  inference threads, each session on the pipeline's onnxruntime threads); the two take turns
  ``--repeat`` times and the median speed-up is kept;
* ``agreement``: per photo, the boxes at or above the counting threshold of their category
  (the marts' ``detection_thresholds``, read from the settings that own them), FP32 vs INT8:
  ``recall`` = the fraction of FP32 boxes matched by an INT8 box of the same category with
  IoU >= 0.5, ``precision`` the reverse, and the photos whose counted boxes per category are
  the same (``images_same_counts``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.pipeline.context import inference_layout
from flows.pipeline.models import ensure_models
from flows.settings import load_settings
from models_ml import ImageRejected, load_rgb, quantize
from models_ml.detector import YoloxDetector
from models_ml.registry import load_manifest
from models_ml.session import create_session


def _photos(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in quantize.PHOTO_SUFFIXES and p.is_file()
    )


def _loops(det: YoloxDetector, pres: list[Any], batch: int, workers: int) -> float:
    """Seconds for ``workers`` loops side by side over every ``batch`` of ``pres``."""
    chunks = [pres[i : i + batch] for i in range(0, len(pres), batch)]

    def run(part: list[list[Any]]) -> None:
        for chunk in part:
            det.predict(chunk)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, [chunks[i::workers] for i in range(workers)]))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of trap photos")
    ap.add_argument("--model", default="mdlite_yolox_tiny")
    ap.add_argument("--limit", type=int, default=0, help="calibrate on at most N photos")
    ap.add_argument("--format", default="qdq", choices=quantize.FORMATS)
    ap.add_argument("--no-per-channel", action="store_true")
    ap.add_argument("--exclude", default="tail", choices=quantize.EXCLUDES)
    ap.add_argument("--calibrate", default="percentile", choices=quantize.CALIBRATIONS)
    ap.add_argument("--batch", type=int, default=4, help="photos per detector call")
    ap.add_argument("--repeat", type=int, default=3, help="FP32/INT8 pairs (median kept)")
    args = ap.parse_args(argv)

    settings = load_settings()
    thresholds = dict(settings.detection_thresholds)  # the counting thresholds' owner
    spec = load_manifest()[args.model]
    model_dir = ensure_models(settings, [args.model])
    folder = args.images.resolve()
    calibration, held_out = quantize.split_photos(_photos(folder))
    if args.limit:
        calibration = calibration[: args.limit]
    workers, threads = inference_layout(settings.inference_workers, settings.intra_op_threads)

    with tempfile.TemporaryDirectory(prefix="trapflow-int8-") as tmp:
        t0 = time.perf_counter()
        made = quantize.quantize_detector(
            spec, model_dir, [folder / p for p in calibration], Path(tmp) / "int8.onnx",
            quant_format=args.format, per_channel=not args.no_per_channel,
            exclude=args.exclude, calibrate=args.calibrate,
        )  # fmt: skip
        quantize_s = time.perf_counter() - t0
        fp32 = YoloxDetector.from_spec(spec, model_dir, intra_op_threads=threads)
        int8 = YoloxDetector.from_spec(
            spec, model_dir, session=create_session(made.path, intra_op_threads=threads)
        )
        images = []
        for rel in held_out:
            try:
                images.append(load_rgb((folder / rel).read_bytes(), draft_size=spec.input.size))
            except ImageRejected:
                continue
        pres = [fp32.preprocess(img) for img in images]
        results = {}
        for name, det in (("fp32", fp32), ("int8", int8)):
            raws = det.predict(pres)
            results[name] = [det.postprocess(r, p) for r, p in zip(raws, pres, strict=True)]
        runs = []
        for _ in range(args.repeat):
            fp32_run = _loops(fp32, pres, args.batch, workers)
            runs.append((fp32_run, _loops(int8, pres, args.batch, workers)))
    ratios = [f / i for f, i in runs]
    fp32_s, int8_s = runs[sorted(range(len(runs)), key=ratios.__getitem__)[len(runs) // 2]]
    agree = quantize.agreement(results["fp32"], results["int8"], thresholds)
    print(
        json.dumps(
            {
                "model": spec.name,
                "calibration_images": made.calibration_images,
                "held_out_images": len(pres),
                "quant_format": made.quant_format,
                "per_channel": made.per_channel,
                "exclude": args.exclude,
                "excluded_nodes": made.excluded_nodes,
                "calibrate": args.calibrate,
                "quantize_s": round(quantize_s, 1),
                "fp32_ips": round(len(pres) / fp32_s, 2),
                "int8_ips": round(len(pres) / int8_s, 2),
                "speedup": round(fp32_s / int8_s, 3),
                "speedups": [round(r, 3) for r in ratios],
                "thresholds": thresholds,
                "agreement": {
                    "recall": round(agree.recall, 3),
                    "precision": round(agree.precision, 3),
                    "fp32_boxes": agree.reference_boxes,
                    "int8_boxes": agree.candidate_boxes,
                    "images_same_counts": agree.images_same_counts,
                    "images": agree.images,
                },
                "inference_workers": workers,
                "intra_op_threads": threads,
                "batch": args.batch,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
