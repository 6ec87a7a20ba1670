"""Training data for :mod:`models_ml.training`: gather, embed, balance and split.

Labelled images come from one folder per species (:func:`images_from_folders`) or a CSV
(:func:`images_from_csv`). :class:`CropEmbedder` detects the best animal box, crops it the
way the species stage does and embeds it with ``mobilenetv2_imagenet_features``
(L2-normalised); :class:`EmbeddingCache` keeps the embeddings by image SHA-256 so a re-train
only embeds new images. :func:`balance` and :func:`stratified_split` choose the images a head
is fitted and checked on.

Pure library: no Prefect, no Streamlit.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from ._imageops import ImageRejected, decode_rgb, open_image
from .classifier import WHOLE_FRAME, box_is_classified, crop_batch
from .exif import read_exif
from .registry import ModelSpec, load_manifest
from .session import create_session

FloatArray = npt.NDArray[np.float32]

EMBEDDER = "mobilenetv2_imagenet_features"
LABEL_COLUMNS = ("label", "species", "category", "common_name")
EMBEDDING_DIM = 1280
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "tif", "tiff", "jpe", "webp"})
MAX_IMAGE_PIXELS = 80_000_000
DETECTION_FLOOR = 0.05


class TrainingDataError(ValueError):
    """The training data cannot give a model; the message says what to change."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str
    origin: str = "folder"  # folder | csv | review | import:<source>
    site: str | None = None  # for --split site: the warehouse's site, else the file's folder


@dataclass
class Skipped:
    path: str
    label: str
    reason: str


@dataclass
class Embedded:
    """The usable training images: ``x[i]`` is the embedding of ``items[i]``'s best crop."""

    items: list[LabelledImage]
    shas: list[str]
    x: FloatArray
    skipped: list[Skipped] = field(default_factory=list)
    cache_hits: int = 0
    whole_frame: int = 0  # images without an animal box, embedded as a whole
    times: list[datetime | None] = field(default_factory=list)  # EXIF time of items[i]


# --------------------------------------------------------------------------- inputs


def images_from_folders(root: Path) -> list[LabelledImage]:
    """One sub-folder per species under ``root`` (images anywhere below each folder)."""
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(
            f"{root} is not a folder; --data needs a folder with one sub-folder per species "
            "(e.g. data/red_fox/*.jpg, data/badger/*.jpg)"
        )
    items: list[LabelledImage] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(sub.rglob("*")):
            if path.is_file() and path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS:
                items.append(LabelledImage(path, sub.name, "folder"))
    if not items:
        raise TrainingDataError(
            f"no images found under {root}: put each species' images in its own sub-folder "
            f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))}), or use --csv with file,label"
        )
    return items


def images_from_csv(
    path: Path, root: Path | None = None, label_column: str | None = None
) -> list[LabelledImage]:
    """A CSV with ``file`` and ``label`` columns (LILA/WCS metadata style).

    Also accepted: ``filename``/``file_name``/``path`` for the file and ``species``/
    ``category``/``common_name`` for the label. Relative files are relative to ``root``
    (default: the CSV's folder). Rows with an empty label are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"CSV {path} not found; give --csv a file with file,label columns")
    base = Path(root) if root is not None else path.parent
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        fcol = next((cols[c] for c in ("file", "filename", "file_name", "path") if c in cols), None)
        names = (label_column.strip().lower(),) if label_column else LABEL_COLUMNS
        lcol = next((cols[c] for c in names if c in cols), None)
        if fcol is None or lcol is None:
            raise TrainingDataError(
                f"{path}: needs a file column (file, filename, path) and a label column "
                f"({', '.join(names)}; --label-column names another); it has "
                f"{', '.join(reader.fieldnames or []) or 'no header'}"
            )
        items = []
        for row in reader:
            file, label = (row.get(fcol) or "").strip(), (row.get(lcol) or "").strip()
            if file and label:
                p = Path(file)
                items.append(LabelledImage(p if p.is_absolute() else base / p, label, "csv"))
    if not items:
        raise TrainingDataError(f"{path}: no rows with both a file and a label")
    return items


# --------------------------------------------------------------------------- embedding


class CropEmbedder:
    """Animal detector + embedder: an image's best animal crop as an L2-normalised vector."""

    def __init__(
        self,
        model_dir: Path,
        manifest: dict[str, ModelSpec] | None = None,
        *,
        animal_model: str = "mdlite_yolox_tiny",
        intra_op_threads: int | None = None,
    ) -> None:
        from .detector import YoloxDetector

        manifest = manifest or load_manifest()
        for name in (animal_model, EMBEDDER):
            if name not in manifest:
                raise TrainingDataError(f"model {name!r} is not in the registry")
        det_spec = manifest[animal_model]
        self.detector = YoloxDetector.from_spec(
            det_spec, det_spec.files_dir(model_dir), intra_op_threads=intra_op_threads
        )
        self.embedder_spec = manifest[EMBEDDER]
        emb_dir = self.embedder_spec.files_dir(model_dir)
        self.embedder = create_session(
            emb_dir / self.embedder_spec.file, intra_op_threads=intra_op_threads
        )
        self._in = self.embedder_spec.input.name or self.embedder.get_inputs()[0].name
        self._out = self.embedder_spec.output.name or self.embedder.get_outputs()[0].name

    @property
    def cache_key(self) -> str:
        return f"{self.detector.model_id}+{self.embedder_spec.model_id}"

    def embed_bytes(self, data: bytes) -> CropEmbedding:
        """The best animal box's confidence and the embeddings of its crop and the whole frame.

        Without an animal box the box embedding is the whole frame's (confidence 0). Raises
        :class:`ImageRejected` for a file that is not a usable image.
        """
        img = decode_rgb(
            open_image(data, max_pixels=MAX_IMAGE_PIXELS), draft_size=self.detector.input_size
        )
        return self.embed_image(img)

    def embed_image(self, img: Image.Image) -> CropEmbedding:
        """:meth:`embed_bytes` for a decoded RGB image (a photo, or a frame of a clip)."""
        dets = [d for d in self.detector.detect(img, DETECTION_FLOOR) if d.category == "animal"]
        boxes = [WHOLE_FRAME]
        conf = 0.0
        if dets:
            best = max(dets, key=lambda d: d.confidence)
            boxes.append(best.bbox)
            conf = float(best.confidence)
        batch = crop_batch(img, boxes, self.embedder_spec.input, context=0.0)
        if dets:  # the box crop gets the species stage's context around it
            batch[1:] = crop_batch(img, boxes[1:], self.embedder_spec.input)
        (out,) = self.embedder.run([self._out], {self._in: batch})
        emb = l2_normalise(np.asarray(out, np.float32).reshape(len(boxes), -1))
        return CropEmbedding(conf, emb[-1], emb[0])


@dataclass(frozen=True)
class CropEmbedding:
    confidence: float  # best animal box; 0 without one
    box: FloatArray  # embedding of the best box's crop (the whole frame without a box)
    whole: FloatArray  # embedding of the whole frame


def l2_normalise(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, np.float32)
    norm = np.linalg.norm(arr, axis=1, keepdims=True)
    out: FloatArray = (arr / np.maximum(norm, 1e-12)).astype(np.float32)
    return out


class EmbeddingCache:
    """Embeddings by image SHA-256, in one ``.npz`` per detector + embedder pair."""

    def __init__(self, folder: Path, key: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        self.path = Path(folder) / f"embeddings-{digest}.npz"
        self.entries: dict[str, CropEmbedding] = {}
        self.dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as npz:
                    rows = zip(npz["sha"], npz["conf"], npz["box"], npz["whole"], strict=True)
                    for sha, conf, box, whole in rows:
                        self.entries[str(sha)] = CropEmbedding(
                            float(conf), np.asarray(box, np.float32), np.asarray(whole, np.float32)
                        )
            except (OSError, ValueError, KeyError):
                self.entries = {}  # a damaged cache is rebuilt, never trusted

    def get(self, sha: str) -> CropEmbedding | None:
        return self.entries.get(sha)

    def put(self, sha: str, value: CropEmbedding) -> None:
        self.entries[sha] = value
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shas = sorted(self.entries)
        empty = np.zeros((0, EMBEDDING_DIM), np.float32)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(
            tmp,
            sha=np.asarray(shas, dtype="U64"),
            conf=np.asarray([self.entries[s].confidence for s in shas], np.float32),
            box=np.stack([self.entries[s].box for s in shas]) if shas else empty,
            whole=np.stack([self.entries[s].whole for s in shas]) if shas else empty,
        )
        os.replace(tmp, self.path)
        self.dirty = False


def embed_images(
    items: Sequence[LabelledImage],
    embedder: CropEmbedder,
    cache: EmbeddingCache | None,
    *,
    min_box_confidence: float = 0.2,
    whole_frame_fallback: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> Embedded:
    """Embed the best animal crop of every image; unusable images are skipped with a reason.

    An image without an animal box >= ``min_box_confidence`` (thumbnails, close-ups) uses its
    whole frame when ``whole_frame_fallback``, else it is skipped. Identical files (same
    SHA-256) count once; the same file under two labels is left out.
    """
    by_sha: dict[str, tuple[LabelledImage, CropEmbedding]] = {}
    times: dict[str, datetime | None] = {}
    conflicts: set[str] = set()
    skipped: list[Skipped] = []
    hits = 0
    for i, item in enumerate(items):
        if progress is not None:
            progress(i, len(items), item.path.name)
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            skipped.append(Skipped(str(item.path), item.label, f"cannot read the file: {exc}"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if sha in by_sha:
            if by_sha[sha][0].label != item.label:
                conflicts.add(sha)
            skipped.append(Skipped(str(item.path), item.label, "duplicate of another file"))
            continue
        value = cache.get(sha) if cache is not None else None
        if value is not None:
            hits += 1
        else:
            try:
                value = embedder.embed_bytes(data)
            except ImageRejected as exc:
                skipped.append(
                    Skipped(str(item.path), item.label, f"not a usable image ({exc.reason})")
                )
                continue
            if cache is not None:
                cache.put(sha, value)
        by_sha[sha] = (item, value)
        times[sha] = read_exif(data).captured_at
    if progress is not None:
        progress(len(items), len(items), "")
    if cache is not None:
        cache.save()
    kept_items, shas, rows, kept_times = [], [], [], []
    whole = 0
    for sha, (item, value) in by_sha.items():
        if sha in conflicts:
            skipped.append(Skipped(str(item.path), item.label, "same file has two labels"))
            continue
        if box_is_classified(value.confidence, min_box_confidence):  # the species stage's rule
            rows.append(value.box)
        elif whole_frame_fallback:
            rows.append(value.whole)
            whole += 1
        else:
            skipped.append(
                Skipped(
                    str(item.path),
                    item.label,
                    f"no animal box >= {min_box_confidence} (best {value.confidence:.2f}); "
                    "crop the image or use the whole frame (--whole-frame)",
                )
            )
            continue
        kept_items.append(item)
        shas.append(sha)
        kept_times.append(times[sha])
    x = np.stack(rows).astype(np.float32) if rows else np.zeros((0, EMBEDDING_DIM), np.float32)
    return Embedded(kept_items, shas, x, skipped, hits, whole, kept_times)


# --------------------------------------------------------------------------- balance / split


def balance(
    labels: Sequence[str], min_per_class: int, max_per_class: int, seed: int = 0
) -> tuple[list[int], dict[str, int], dict[str, int]]:
    """Indices kept, classes left out (below the minimum), classes subsampled (above the max)."""
    if min_per_class < 2:
        raise TrainingDataError("min_per_class must be at least 2 (one to train, one to check)")
    if max_per_class < min_per_class:
        raise TrainingDataError("max_per_class must be at least min_per_class")
    counts = Counter(labels)
    rng = np.random.default_rng(seed)
    excluded = {k: n for k, n in sorted(counts.items()) if n < min_per_class}
    subsampled = {k: n for k, n in sorted(counts.items()) if n > max_per_class}
    keep: list[int] = []
    for label in sorted(counts):
        if label in excluded:
            continue
        idx = [i for i, lab in enumerate(labels) if lab == label]
        if label in subsampled:
            idx = sorted(int(i) for i in rng.choice(idx, size=max_per_class, replace=False))
        keep.extend(idx)
    return sorted(keep), excluded, subsampled


def stratified_split(
    labels: Sequence[str], val_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Train and validation indices with every class on both sides (at least one each)."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(set(labels)):
        idx = np.array([i for i, lab in enumerate(labels) if lab == label])
        rng.shuffle(idx)
        n_val = min(len(idx) - 1, max(1, round(len(idx) * val_fraction)))
        val.extend(int(i) for i in idx[:n_val])
        train.extend(int(i) for i in idx[n_val:])
    return sorted(train), sorted(val)


#: How ``--split`` keeps look-alike frames on one side: by burst (default), by site, by image.
SPLITS = ("burst", "site", "image")


def split_groups(
    items: Sequence[LabelledImage],
    times: Sequence[datetime | None],
    split: str,
    gap_s: float,
) -> list[str]:
    """The group of each image that the split keeps whole.

    ``burst``: photos of one folder (one camera) less than ``gap_s`` apart (the marts'
    independence interval) are one burst, so frames of one visit never fall on both sides;
    a photo without a time is its own group. ``site``: the image's site. ``image``: itself.
    """
    if split not in SPLITS:
        raise TrainingDataError(f"split {split!r}: use one of {', '.join(SPLITS)}")
    if split == "image":
        return [f"image:{i}" for i in range(len(items))]
    if split == "site":
        return [f"site:{item.site or item.path.parent.name}" for item in items]
    groups = [""] * len(items)
    by_folder: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_folder.setdefault(str(item.path.parent), []).append(i)
    for folder, idx in by_folder.items():
        timed = sorted((t, i) for i in idx if (t := times[i]) is not None)
        burst, last = 0, None
        for t, i in timed:
            if last is not None and (t - last).total_seconds() >= gap_s:
                burst += 1
            groups[i], last = f"burst:{folder}:{burst}", t
        for i in idx:
            if times[i] is None:
                groups[i] = f"image:{i}"
    return groups


def group_split(
    labels: Sequence[str], groups: Sequence[str], val_fraction: float, seed: int = 0
) -> tuple[list[int], list[int], list[str]]:
    """Train and validation indices with whole groups on one side, stratified by species:
    for each species (its groups are those where it is the most common label) about
    ``val_fraction`` of its images are held out, at least one group, and at least one group is
    kept for training. Returns also the species with a single group (trained on, not checked)."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    owner = {g: Counter(labels[i] for i in idx).most_common(1)[0][0] for g, idx in members.items()}
    val_groups: set[str] = set()
    single: list[str] = []
    for label in sorted(set(owner.values())):
        own = sorted(g for g, o in owner.items() if o == label)
        if len(own) < 2:
            single.append(label)
            continue
        order = [own[int(j)] for j in rng.permutation(len(own))]
        total = sum(len(members[g]) for g in own)
        want = max(1, round(total * val_fraction))
        held = 0
        for g in order[:-1]:  # the last group always trains
            if held >= want:
                break
            val_groups.add(g)
            held += len(members[g])
    val = sorted(i for g in val_groups for i in members[g])
    train = sorted(i for g, idx in members.items() if g not in val_groups for i in idx)
    return train, val, single
