"""A second opinion on people: what is inside the animal detector's boxes.

MegadetectorLite boxes people too, but calls them ``animal`` (a shoulder close to the lens, legs
walking past), and YOLOX-nano misses people that are cut off or very close. This cue classifies
the crop of every animal box with an ImageNet classifier and adds up the probability of the
classes that people wear or carry (clothing, packs, helmets, rifles, chain saws). A box whose
crop is mostly such things becomes a ``person`` detection with confidence
``animal box confidence x P(apparel or gear)`` and, as label, the most likely of those classes.

Measured on the 180 sample photos (../shared/data/camtrap): the three person photos whose
person the animal detector boxed score 0.54, 0.19 and 0.14; no photo without a person scores
above 0.08. The class list was chosen with those photos in view, so treat it as a cue for
review and alerts, not as a person detector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from ._types import BBox, Detection
from .registry import ModelSpec, load_manifest
from .session import create_session

DEFAULT_CUE_MODEL = "mobilenetv2_12_int8_imagenet"

#: Animal boxes below this confidence are not looked into (a decoding default of the cue, not
#: a counting rule: which boxes count is dbt's).
MIN_SOURCE_CONFIDENCE = 0.25

#: ImageNet classes that are worn or carried by people (lines of imagenet_labels.txt).
APPAREL_AND_GEAR: frozenset[str] = frozenset(
    {
        # clothing
        "abaya", "academic gown", "apron", "bikini", "bonnet", "bow tie", "brassiere",
        "bulletproof vest", "cardigan", "cloak", "cowboy boot", "cowboy hat", "crash helmet",
        "gown", "jean", "jersey", "kimono", "lab coat", "maillot", "military uniform",
        "miniskirt", "mitten", "overskirt", "pajama", "poncho", "running shoe", "sandal",
        "sarong", "ski mask", "sock", "sombrero", "stole", "suit", "sunglass", "sunglasses",
        "sweatshirt", "swimming trunks", "trench coat", "Windsor tie",
        # carried
        "backpack", "bath towel", "sleeping bag", "umbrella",
        # tools and weapons: what rangers most want to hear about
        "assault rifle", "chain saw", "hatchet", "revolver", "rifle",
    }
)  # fmt: skip


class ApparelPersonCue:
    """Crop classifier over animal boxes; emits ``person`` detections (see module doc)."""

    def __init__(self, session: ort.InferenceSession, spec: ModelSpec, labels: Sequence[str]):
        self.session = session
        self.spec = spec
        self.labels = tuple(labels)
        self._gear = np.array([label in APPAREL_AND_GEAR for label in self.labels])
        if not self._gear.any():
            raise ValueError(f"{spec.model_id}: none of its labels are apparel or gear")

    @classmethod
    def from_models_dir(
        cls,
        model_dir: Path,
        manifest: Mapping[str, ModelSpec] | None = None,
        model: str = DEFAULT_CUE_MODEL,
        intra_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> ApparelPersonCue:
        specs = manifest if manifest is not None else load_manifest()
        spec = specs[model]
        if spec.kind != "classifier" or not spec.labels_file:
            raise ValueError(f"model {model!r} must be a classifier with a labels file")
        labels = (Path(model_dir) / spec.labels_file).read_text(encoding="utf-8").splitlines()
        session = create_session(
            Path(model_dir) / spec.file, providers=providers, intra_op_threads=intra_op_threads
        )
        return cls(session, spec, labels)

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def preprocess(self, img: Image.Image, boxes: Sequence[BBox], pad: float = 0.1) -> np.ndarray:
        """Crops (10 % context around each box) as a float32 [N, 3, 224, 224] ImageNet batch."""
        width, height = img.size
        size = self.spec.input.size
        mean = np.array(self.spec.input.mean, np.float32)
        std = np.array(self.spec.input.std, np.float32)
        crops = []
        for b in boxes:
            x0 = max(0.0, (b.x - pad * b.w) * width)
            y0 = max(0.0, (b.y - pad * b.h) * height)
            x1 = min(float(width), (b.x + b.w * (1 + pad)) * width)
            y1 = min(float(height), (b.y + b.h * (1 + pad)) * height)
            crop = img.crop(
                (int(x0), int(y0), max(int(x1), int(x0) + 1), max(int(y1), int(y0) + 1))
            )
            arr = np.asarray(crop.resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
            crops.append(((arr - mean) / std).transpose(2, 0, 1))
        return np.stack(crops).astype(np.float32)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities [N, classes]."""
        raw = self.session.run([self.spec.output.name], {self.spec.input.name: batch})[0]
        logits: np.ndarray = np.asarray(raw, np.float64)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs: np.ndarray = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs

    def postprocess(
        self, probs: np.ndarray, sources: Sequence[Detection], conf_floor: float
    ) -> list[Detection]:
        out = []
        for p, det in zip(probs, sources, strict=True):
            gear = float(p[self._gear].sum())
            confidence = det.confidence * gear
            if confidence < conf_floor:
                continue
            top = int(np.argmax(np.where(self._gear, p, -1.0)))
            out.append(Detection("person", self.labels[top], confidence, det.bbox, self.model_id))
        return out

    def detect(
        self,
        img: Image.Image,
        animal_boxes: Sequence[Detection],
        conf_floor: float,
        min_box_confidence: float = MIN_SOURCE_CONFIDENCE,
    ) -> list[Detection]:
        """``person`` detections for the animal boxes whose crops are apparel or gear."""
        sources = [d for d in animal_boxes if d.confidence >= min_box_confidence]
        if not sources:
            return []
        probs = self.predict(self.preprocess(img, [d.bbox for d in sources]))
        return self.postprocess(probs, sources, conf_floor)
