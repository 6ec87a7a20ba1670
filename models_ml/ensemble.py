"""Several detectors over one photo, each trusted for some MegaDetector categories.

The default pairs MegadetectorLite (``animal``) with YOLOX-nano COCO (``person`` and
``vehicle``, plus its COCO animal classes as a second opinion, labelled e.g. ``dog``).
Sessions are created once in :meth:`DetectorEnsemble.from_models_dir`; :meth:`detect` is
cheap per image and thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ._types import CATEGORY_IDS, Detection, PreprocessedImage
from .detector import DEFAULT_CONF_FLOOR, YoloxDetector
from .person_cue import ApparelPersonCue
from .registry import ModelSpec, load_manifest

DEFAULT_ANIMAL_MODEL = "mdlite_yolox_tiny"
DEFAULT_GENERAL_MODEL = "yolox_nano_coco"


@dataclass(frozen=True)
class EnsembleMember:
    """One detector and the categories whose boxes are kept from it."""

    detector: YoloxDetector
    categories: frozenset[str]


class DetectorEnsemble:
    """Run every member detector on a photo and keep each one's trusted categories."""

    def __init__(
        self,
        members: Iterable[tuple[YoloxDetector, Iterable[str]]],
        person_cue: ApparelPersonCue | None = None,
    ) -> None:
        self.person_cue = person_cue
        self.members: tuple[EnsembleMember, ...] = tuple(
            EnsembleMember(detector, frozenset(categories)) for detector, categories in members
        )
        if not self.members:
            raise ValueError("an ensemble needs at least one detector")
        for member in self.members:
            unknown = member.categories - CATEGORY_IDS.keys()
            if unknown or not member.categories:
                raise ValueError(
                    f"{member.detector.model_id}: categories {sorted(member.categories)} must be "
                    f"a non-empty subset of {sorted(CATEGORY_IDS)}"
                )

    @classmethod
    def from_models_dir(
        cls,
        model_dir: Path,
        manifest: Mapping[str, ModelSpec] | None = None,
        animal_model: str = DEFAULT_ANIMAL_MODEL,
        general_model: str | None = DEFAULT_GENERAL_MODEL,
        intra_op_threads: int | None = None,
        *,
        general_categories: Sequence[str] = ("person", "vehicle", "animal"),
        providers: Sequence[str] | None = None,
        person_cue_model: str | None = None,
    ) -> DetectorEnsemble:
        """Load the animal detector (kept for ``animal``) and the general detector.

        The general detector is kept for ``general_categories``: by default person and vehicle,
        plus animal as a second opinion; drop ``"animal"`` to trust only the animal model.
        ``general_model=None`` runs the animal detector alone; ``general_model ==
        animal_model`` (one MegaDetector for every category) runs it once, kept for animal and
        ``general_categories``. ``person_cue_model`` (an ImageNet classifier) adds
        :class:`ApparelPersonCue` over the animal detector's boxes.
        """
        specs = manifest if manifest is not None else load_manifest()
        animal_categories: tuple[str, ...] = ("animal",)
        if general_model == animal_model:  # one MegaDetector for everything: run it once,
            # so its animal boxes are not stored (and counted) twice
            animal_categories = ("animal", *(c for c in general_categories if c != "animal"))
            general_model = None
        members: list[tuple[YoloxDetector, Iterable[str]]] = [
            (_load(specs, animal_model, model_dir, intra_op_threads, providers), animal_categories)
        ]
        if general_model is not None:
            general = _load(specs, general_model, model_dir, intra_op_threads, providers)
            members.append((general, general_categories))
        cue = None
        if person_cue_model:
            cue = ApparelPersonCue.from_models_dir(
                model_dir, specs, person_cue_model, intra_op_threads, providers
            )
        return cls(members, cue)

    @property
    def detectors(self) -> tuple[YoloxDetector, ...]:
        return tuple(m.detector for m in self.members)

    @property
    def model_ids(self) -> tuple[str, ...]:
        """``name@version`` of each member, in run order."""
        ids = tuple(m.detector.model_id for m in self.members)
        return (*ids, self.person_cue.model_id) if self.person_cue else ids

    @property
    def draft_size(self) -> tuple[int, int]:
        """The largest model input (width, height): pass it to ``decode_rgb(draft_size=)``."""
        sizes = [m.detector.input_size for m in self.members]
        return max(w for w, _ in sizes), max(h for _, h in sizes)

    def detect(self, img: Image.Image, conf_floor: float = DEFAULT_CONF_FLOOR) -> list[Detection]:
        """All kept boxes from every member (member order, then confidence, highest first)."""
        detections: list[Detection] = []
        for member in self.members:
            found = member.detector.detect(img, conf_floor)
            detections.extend(d for d in found if d.category in member.categories)
        if self.person_cue is not None:
            animal_model = self.members[0].detector.model_id
            boxes = [d for d in detections if d.model == animal_model and d.category == "animal"]
            detections.extend(self.person_cue.detect(img, boxes, conf_floor))
        return detections

    def preprocess(self, img: Image.Image) -> tuple[PreprocessedImage, ...]:
        """Every member's model input for ``img`` (can run ahead, on another thread)."""
        if img.mode != "RGB":
            raise ValueError(f"the detectors expect an RGB image, got mode {img.mode!r}")
        pixels = np.asarray(img, dtype=np.uint8)  # converted once for every member
        return tuple(m.detector.preprocess(pixels) for m in self.members)

    def detect_batch(
        self,
        images: Sequence[Image.Image],
        conf_floor: float = DEFAULT_CONF_FLOOR,
        preprocessed: Sequence[Sequence[PreprocessedImage]] | None = None,
    ) -> list[list[Detection]]:
        """:meth:`detect` for several photos: each member sees the whole batch at once.

        ``preprocessed[i]`` is :meth:`preprocess` of ``images[i]`` when done beforehand.
        """
        pres = preprocessed if preprocessed is not None else [self.preprocess(i) for i in images]
        if len(pres) != len(images):
            raise ValueError(f"{len(images)} images but {len(pres)} preprocessed inputs")
        per_image: list[list[Detection]] = [[] for _ in images]
        for k, member in enumerate(self.members):
            det = member.detector
            mine = [p[k] for p in pres]
            raws = det.predict(mine)
            found = [det.postprocess(r, p, conf_floor) for r, p in zip(raws, mine, strict=True)]
            for out, dets in zip(per_image, found, strict=True):
                out.extend(d for d in dets if d.category in member.categories)
        if self.person_cue is not None:
            animal_model = self.members[0].detector.model_id
            for img, out in zip(images, per_image, strict=True):
                boxes = [d for d in out if d.model == animal_model and d.category == "animal"]
                out.extend(self.person_cue.detect(img, boxes, conf_floor))
        return per_image

    @property
    def animal_model_id(self) -> str:
        """The detector trusted for animals (the first member)."""
        return self.members[0].detector.model_id

    def __repr__(self) -> str:
        parts = ", ".join(f"{m.detector.model_id}: {sorted(m.categories)}" for m in self.members)
        return f"DetectorEnsemble({parts})"


def is_blank(detections: Iterable[Detection], thresholds: Mapping[str, float]) -> bool:
    """True when no box reaches its category's threshold (MegaDetector's "blank" image)."""
    return not any(d.confidence >= thresholds.get(d.category, 1.0) for d in detections)


def _load(
    specs: Mapping[str, ModelSpec],
    name: str,
    model_dir: Path,
    intra_op_threads: int | None,
    providers: Sequence[str] | None,
) -> YoloxDetector:
    if name not in specs:
        raise KeyError(f"model {name!r} is not in the manifest (have: {sorted(specs)})")
    spec = specs[name]
    if spec.kind != "detector":
        raise ValueError(f"model {name!r} is a {spec.kind}, not a detector")
    return YoloxDetector.from_spec(
        spec,
        spec.files_dir(Path(model_dir)),
        intra_op_threads=intra_op_threads,
        providers=providers,
    )
