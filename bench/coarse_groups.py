"""Coarse ImageNet groups against plain "animal", on the sample's labelled photos.

    .venv/bin/python bench/coarse_groups.py --model-dir .trapflow/models

Every photo of ``../shared/data/camtrap/MANIFEST.csv`` with a species label (blanks, people,
vehicles and 'unidentified' left out) is classified the way the species stage would with
``species_model = "imagenet_coarse_groups"``: MegadetectorLite's boxes, the one crop rule
(``models_ml.classifier.classification_targets``; the best box, else the whole frame), the INT8
ImageNet model rolled up by ``models_ml/imagenet_groups.toml``. The truth is the species' group
(a hand-written map below, from the same WordNet groups: a leopard cat is a cat, a mouse deer a
deer, a skunk a mustelid); a species in no group (civet, moonrat, elephant, opossum) should
stay ``animal``. Prints ONE JSON line: for each probability threshold (the marts' default
classification_threshold is 0.5), the accuracy, how often a named group is right and how often
it is wrong, beside the accuracy of labelling everything ``animal``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from models_ml._imageops import ImageRejected, decode_rgb, open_image
from models_ml.classifier import classification_targets, group_matrix, load_classifier
from models_ml.detector import YoloxDetector
from models_ml.registry import load_manifest

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camtrap"
TRUTH = {  # words of the MANIFEST's labels -> group ("fox squirrel" is checked first)
    "rodents and hares": ["fox squirrel", "squirrel", "beaver", "agouti"],
    "cats": ["leopard cat", "cat", "jaguar", "cougar"],
    "dogs and foxes": ["fox", "coyote", "wolf", "dog"],
    "deer and antelopes": ["deer", "moose", "antelope"],
    "bears": ["bear"],
    "primates": ["macaque", "chimpanzee"],
    "mustelids": ["skunk"],
    "birds": ["chicken", "crow", "owl", "bird", "heron", "capercaillie"],
}
LEFT_OUT = {"empty", "blank", "human", "person", "vehicle", "unidentified", "nothing"}


def truth(label: str) -> str:
    low = label.lower()
    for group, words in TRUTH.items():
        if any(w in low for w in words):
            return group
    return "animal"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", type=Path, default=Path(".trapflow/models"))
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    args = ap.parse_args()
    manifest = load_manifest()
    det = YoloxDetector.from_spec(manifest["mdlite_yolox_tiny"], args.model_dir)
    clf = load_classifier(manifest["imagenet_coarse_groups"], manifest, args.model_dir)
    names, _ = group_matrix()
    thresholds = (0.0, 0.5, 0.7, 0.9)
    tally = {t: {"correct": 0, "named_right": 0, "named_wrong": 0} for t in thresholds}
    n = outside = 0
    with (args.samples / "MANIFEST.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["species_or_label"] and "image" in r["kind"]]
    for row in rows:
        label = row["species_or_label"]
        if label.lower().split(" (")[0] in LEFT_OUT:
            continue
        try:
            data = (args.samples / row["path"]).read_bytes()
            img = decode_rgb(open_image(data, max_pixels=100_000_000), draft_size=det.input_size)
        except (OSError, ImageRejected):
            continue
        dets = det.detect(img, 0.05)
        targets = classification_targets(dets, 0.2, det.model_id)
        sure = [t for t in targets if t.detection is not None]  # several boxes: the surest
        best = max(sure, key=lambda t: dets[t.detection or 0].confidence) if sure else targets[0]
        probs = clf.predict(clf.preprocess(img, [best.box]))[0]
        top = int(np.argmax(probs))
        want = truth(label)
        n += 1
        outside += want == "animal"
        for t in thresholds:
            got = names[top] if probs[top] >= t else "animal"
            tally[t]["correct"] += got == want
            if got != "animal":
                tally[t]["named_right" if got == want else "named_wrong"] += 1
    print(json.dumps({
        "photos": n,
        "animal_everywhere_accuracy": round(outside / n, 3),
        "by_threshold": {
            str(t): {**v, "accuracy": round(v["correct"] / n, 3)} for t, v in tally.items()
        },
    }))  # fmt: skip


if __name__ == "__main__":
    main()
