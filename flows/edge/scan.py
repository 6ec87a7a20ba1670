"""Reading a card on the edge: list the photos, hash each (its media id, the central one), read
its EXIF time and run the counting detectors on one thread; say whether it goes up.

A photo goes up when any category's best box is at or above that category's counting
threshold (``EdgeSettings.detection_thresholds``, the dbt var's defaults): the central marts
count only boxes at or above it, and only from one of these detectors, so a photo kept on the
card has nothing the marts would count. A photo the edge cannot decode goes up too, so the
central ingest quarantines it with its reason rather than it vanishing on the card.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flows.edge.settings import EdgeSettings, EdgeSettingsError
from flows.store import ids
from models_ml import ImageRejected, YoloxDetector, decode_rgb, open_image, read_exif
from models_ml import registry as _registry
from models_ml._types import CATEGORY_IDS


@dataclass(frozen=True)
class CardFile:
    path: str  # relative to the card, '/'-separated
    abs_path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Verdict:
    media_id: str
    captured_at: str | None
    scores: dict[str, float]  # category -> best confidence (0.0: no box above the floor)
    kind: str | None  # person | vehicle | animal | unreadable; None: kept on the card

    @property
    def uploads(self) -> bool:
        return self.kind is not None


def list_card(card: Path, extensions: tuple[str, ...]) -> Iterator[CardFile]:
    """Every photo under ``card`` in path order; hidden files and folders are skipped."""
    wanted = {e.lower() for e in extensions}
    for folder, dirs, files in os.walk(card):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.rsplit(".", 1)[-1].lower() not in wanted:
                continue
            full = Path(folder) / name
            try:
                st = full.stat()
            except OSError:
                continue
            yield CardFile(full.relative_to(card).as_posix(), full, st.st_size, st.st_mtime_ns)


class EdgeDetector:
    """The counting detectors, one thread each call, their sessions created once."""

    def __init__(self, settings: EdgeSettings) -> None:
        manifest = _registry.load_manifest()
        self.settings = settings
        self.detectors: list[YoloxDetector] = []
        for name in settings.detectors:
            if name not in manifest:
                known = ", ".join(sorted(manifest))
                raise EdgeSettingsError(f"detector {name!r} is not in the model registry ({known})")
            spec = manifest[name]
            try:
                _registry.resolve(spec, settings.model_dir)
            except _registry.ModelNotFoundError:
                if not settings.model_mirror:
                    raise
                _registry.pull(spec, settings.model_dir, settings.model_mirror)
            self.detectors.append(
                YoloxDetector.from_spec(
                    spec, spec.files_dir(settings.model_dir), intra_op_threads=1,
                    providers=["CPUExecutionProvider"],
                )
            )  # fmt: skip
        sizes = [d.input_size for d in self.detectors]
        self.draft_size = (max(w for w, _ in sizes), max(h for _, h in sizes))

    @property
    def model_ids(self) -> list[str]:
        return [d.model_id for d in self.detectors]

    def judge(self, data: bytes) -> Verdict:
        media_id = ids.media_id(data)
        thresholds = self.settings.detection_thresholds
        scores = dict.fromkeys(CATEGORY_IDS, 0.0)
        try:
            img = open_image(data, max_pixels=self.settings.max_image_pixels)
            try:
                exif = read_exif(data)
            except Exception:  # an unparsable EXIF block: the photo is still judged
                exif = None
            rgb = decode_rgb(img, draft_size=self.draft_size)
        except (ImageRejected, OSError):
            return Verdict(media_id, None, scores, "unreadable")
        captured = exif.captured_at.isoformat() if exif is not None and exif.captured_at else None
        for detector in self.detectors:
            for det in detector.detect(rgb, self.settings.inference_floor):
                scores[det.category] = max(scores[det.category], det.confidence)
        rgb.close()
        counted = [c for c, s in scores.items() if s >= thresholds.get(c, 1.01) and s > 0]
        if "person" in counted:
            kind: str | None = "person"
        elif counted:
            kind = max(counted, key=lambda c: scores[c])
        else:
            kind = None
        return Verdict(media_id, captured, scores, kind)
