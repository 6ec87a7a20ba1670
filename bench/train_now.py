"""What "train now" costs once the embeddings are cached: fit + export on 1,000 embeddings,
and re-labelling 100k crops from cached embeddings.

    .venv/bin/python bench/train_now.py [--n-train 1000] [--n-relabel 100000] [--classes 8]

prints ONE JSON line. Embeddings are synthetic (unit vectors around one random centre per
class, 1280-d, as ``mobilenetv2_imagenet_features`` gives), so the figures are the cost of the
arithmetic, not of a dataset:

* ``train_s``: ``models_ml.training_report.fit_head`` + ``export_head_onnx`` + a confusion
  evaluation on 1,000 embeddings (the issue's bound: <= 10 s); ``fit_only_s``, the bare
  scikit-learn fit on the same rows, and ``ratio_train`` = train_s / fit_only_s;
* ``relabel_s``: the exported head (onnxruntime) over ``--n-relabel`` cached embeddings, in
  batches of 4,096, with top-1 per row; ``numpy_s``: the same Gemm + softmax in numpy, and
  ``ratio_relabel`` = relabel_s / numpy_s; ``relabel_per_s``: crops per second.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from models_ml.session import create_session
from models_ml.training_report import evaluate, export_head_onnx, fit_head, head_weights


def _embeddings(n: int, classes: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    centres = rng.normal(size=(classes, 1280))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(scale=2.0, size=(n, 1280))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"species_{k}" for k in y]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-relabel", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x, y = _embeddings(args.n_train, args.classes, rng)
    split = int(0.75 * len(y))

    fits, trains = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):  # taking turns, the median of each: a busy machine slows both
            t0 = time.perf_counter()
            fit_head(x[:split], y[:split])
            fits.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model = fit_head(x[:split], y[:split])
            evaluate(model, x[split:], y[split:], y[:split])
            head = export_head_onnx(model, Path(tmp) / "head.onnx")
            trains.append(time.perf_counter() - t0)
        fit_only, train_s = float(np.median(fits)), float(np.median(trains))

        crops, _ = _embeddings(args.n_relabel, args.classes, rng)
        session = create_session(head)
        inp, out = session.get_inputs()[0].name, session.get_outputs()[0].name
        t0 = time.perf_counter()
        for i in range(0, len(crops), 4096):
            (probs,) = session.run([out], {inp: crops[i : i + 4096]})
            np.argmax(probs, axis=1)
        relabel_s = time.perf_counter() - t0

    w, b = head_weights(model)
    t0 = time.perf_counter()
    for i in range(0, len(crops), 4096):
        z = crops[i : i + 4096] @ w.T + b
        z = np.exp(z - z.max(axis=1, keepdims=True))
        np.argmax(z / z.sum(axis=1, keepdims=True), axis=1)
    numpy_s = time.perf_counter() - t0
    print(json.dumps({
        "n_train": args.n_train, "classes": args.classes,
        "train_s": round(train_s, 3), "fit_only_s": round(fit_only, 3),
        "ratio_train": round(train_s / fit_only, 3),
        "n_relabel": args.n_relabel, "relabel_s": round(relabel_s, 3),
        "numpy_s": round(numpy_s, 3), "ratio_relabel": round(relabel_s / numpy_s, 3),
        "relabel_per_s": round(args.n_relabel / relabel_s),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
