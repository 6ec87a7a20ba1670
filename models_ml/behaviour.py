"""Behaviour heads: custom labels on the frames of clips (feeding, grooming, a cat that punches).

A clip is labelled whole (one folder per label, ``clips/grooming/*.mp4``) or in segments (a
CSV ``clip,start_s,end_s,label``). Frames are sampled as a run samples them (``rate`` per
second, plus the first), each one cropped and embedded by the species stage's rule
(``models_ml.classifier``: the surest animal box, else the whole frame) and labelled with the
segment it falls in; frames in no segment are not used. The head is fitted, checked and
exported as a species head is (``models_ml.training``), with the split keeping each clip on
one side, and registered with ``task = "behaviour"``: a run then writes a label for every
sampled frame (``raw.frame_labels``) beside, never instead of, the species.

Pure library: no Prefect, no Streamlit.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ._imageops import sniff_clip
from .classifier import box_is_classified
from .training import (
    TrainingConfig,
    TrainingDataError,
    TrainResult,
    balance,
    evaluate,
    fit_head,
    group_split,
    register_head,
    report_markdown,
    write_version,
)
from .training_data import EMBEDDING_DIM, CropEmbedder, EmbeddingCache, Skipped
from .video import VIDEO_EXTENSIONS, VideoError, sample_frames

__all__ = [
    "DEFAULT_BEHAVIOUR_NAME",
    "LabelledClip",
    "clips_from_csv",
    "clips_from_folders",
    "train_behaviour_head",
]

DEFAULT_BEHAVIOUR_NAME = "behaviour_head"


@dataclass(frozen=True)
class LabelledClip:
    """A clip and its labels: ``(start_s, end_s, label)`` segments (a whole clip is one
    segment from 0 to infinity)."""

    path: Path
    segments: tuple[tuple[float, float, str], ...]

    def label_at(self, t: float) -> str | None:
        for start, end, label in self.segments:
            if start <= t < end or (t == end and end == self.segments[-1][1]):
                return label
        return None


def _is_clip(path: Path) -> bool:
    """A clip by its extension or, as a run tells (ASF, MKV...), by its first bytes."""
    if not path.is_file():
        return False
    if path.suffix.lower().lstrip(".") in VIDEO_EXTENSIONS:
        return True
    with path.open("rb") as fh:
        return sniff_clip(fh.read(16)) is not None


def clips_from_folders(root: Path) -> list[LabelledClip]:
    """One sub-folder per label, clips anywhere below it."""
    if not Path(root).is_dir():
        raise TrainingDataError(f"{root} is not a folder; --clips needs one sub-folder per label")
    out = [
        LabelledClip(path, ((0.0, float("inf"), sub.name),))
        for sub in sorted(p for p in Path(root).iterdir() if p.is_dir())
        for path in sorted(sub.rglob("*"))
        if _is_clip(path)
    ]
    if not out:
        raise TrainingDataError(
            f"no clips under {root}: put each label's clips ({', '.join(VIDEO_EXTENSIONS)}) "
            "in its own sub-folder, or use --clips-csv clip,start_s,end_s,label"
        )
    return out


def clips_from_csv(path: Path) -> list[LabelledClip]:
    """``clip,start_s,end_s,label`` rows (clips relative to the CSV's folder)."""
    if not Path(path).is_file():
        raise TrainingDataError(f"clip CSV {path} not found")
    segments: dict[Path, list[tuple[float, float, str]]] = {}
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        need = {"clip", "start_s", "end_s", "label"}
        if not need <= {c.strip().lower() for c in reader.fieldnames or []}:
            raise TrainingDataError(
                f"{path}: needs the columns clip,start_s,end_s,label; it has "
                f"{', '.join(reader.fieldnames or []) or 'no header'}"
            )
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
            except ValueError:
                raise TrainingDataError(
                    f"{path} line {line}: start_s and end_s must be seconds (e.g. 2.5)"
                ) from None
            if end <= start or not row["label"]:
                raise TrainingDataError(
                    f"{path} line {line}: needs a label and end_s after start_s"
                )
            clip = Path(row["clip"])
            clip = clip if clip.is_absolute() else Path(path).parent / clip
            segments.setdefault(clip, []).append((start, end, row["label"]))
    return [LabelledClip(c, tuple(sorted(s))) for c, s in segments.items()]


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FrameSet:
    labels: list[str]
    groups: list[str]  # the clip of each frame: the split keeps it whole
    frames: list[tuple[str, int, float]]  # (clip, frame_number, time_s)
    x: np.ndarray
    skipped: list[Skipped]
    cache_hits: int


def embed_clips(
    clips: Sequence[LabelledClip],
    embedder: CropEmbedder,
    cache: EmbeddingCache | None,
    *,
    rate: float,
    min_box_confidence: float,
    progress: Callable[[int, int, str], None] | None = None,
) -> FrameSet:
    """Every labelled sampled frame of every clip, embedded by the species stage's rule."""
    out = FrameSet([], [], [], np.zeros((0, EMBEDDING_DIM), np.float32), [], 0)
    rows = []
    for i, clip in enumerate(clips):
        if progress is not None:
            progress(i, len(clips), clip.path.name)
        try:
            sha = _sha(clip.path)
            for frame in sample_frames(str(clip.path), rate=rate):
                label = clip.label_at(frame.time_s)
                if label is None:
                    continue
                key = f"{sha}:{rate}:{frame.frame_number}"
                value = cache.get(key) if cache is not None else None
                if value is None:
                    value = embedder.embed_image(frame.image)
                    if cache is not None:
                        cache.put(key, value)
                else:
                    out.cache_hits += 1
                box = box_is_classified(value.confidence, min_box_confidence)
                rows.append(value.box if box else value.whole)
                out.labels.append(label)
                out.groups.append(str(clip.path))
                out.frames.append((str(clip.path), frame.frame_number, frame.time_s))
        except (OSError, VideoError) as exc:
            out.skipped.append(Skipped(str(clip.path), clip.segments[0][2], f"clip: {exc}"))
    if progress is not None:
        progress(len(clips), len(clips), "")
    if cache is not None:
        cache.save()
    if rows:
        out.x = np.stack(rows).astype(np.float32)
    return out


def train_behaviour_head(
    clips: Sequence[LabelledClip],
    *,
    model_dir: Path,
    out_root: Path,
    embedder: CropEmbedder,
    name: str = DEFAULT_BEHAVIOUR_NAME,
    config: TrainingConfig | None = None,
    rate: float = 1.0,
    progress: Callable[[int, int, str], None] | None = None,
) -> TrainResult:
    """Sample, embed, split by clip, fit, evaluate, export and register a behaviour head."""
    cfg = config or TrainingConfig()
    if not clips:
        raise TrainingDataError("no labelled clips given")
    cache = EmbeddingCache(Path(out_root) / "embeddings", embedder.cache_key + ":frames")
    fs = embed_clips(
        clips, embedder, cache, rate=rate, min_box_confidence=cfg.min_box_confidence,
        progress=progress,
    )  # fmt: skip
    if not fs.labels:
        raise TrainingDataError(
            "no labelled frame could be read from the clips; check their segments and files"
        )
    keep, excluded, subsampled = balance(fs.labels, cfg.min_per_class, cfg.max_per_class, cfg.seed)
    y = [fs.labels[i] for i in keep]
    if len(set(y)) < 2:
        have = ", ".join(f"{k} ({n} frames)" for k, n in sorted(Counter(fs.labels).items()))
        raise TrainingDataError(
            f"a behaviour head needs at least two labels with {cfg.min_per_class}+ frames; "
            f"have {have}"
        )
    tr, va, untested = group_split(y, [fs.groups[i] for i in keep], cfg.val_fraction, cfg.seed)
    if not va:
        raise TrainingDataError(
            "every label comes from a single clip: nothing can be held out; label two or "
            "more clips per label"
        )
    x = fs.x[keep]
    y_tr, y_va = [y[i] for i in tr], [y[i] for i in va]
    model = fit_head(x[tr], y_tr, cfg.regularisation_c, cfg.seed)
    evaluation = evaluate(model, x[va], y_va, y_tr)
    version, out_dir, head_path, labels_path, labels = write_version(
        model, evaluation, out_root, name, model_dir
    )
    result = TrainResult(
        name=name, version=version, model_id=f"{name}@{version}", out_dir=out_dir,
        head_path=head_path, labels=labels, evaluation=evaluation, excluded_classes=excluded,
        subsampled_classes=subsampled, skipped=fs.skipped, cache_hits=fs.cache_hits,
        embedded=len(fs.labels), estimator=model, untested_classes=untested, split="clip",
    )  # fmt: skip
    report = {
        "model": result.model_id,
        "task": "behaviour",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rate": rate,
        "config": asdict(cfg),
        "evaluation": asdict(evaluation),
        "clips": sorted({str(c.path) for c in clips}),
        "validation_clips": sorted({fs.groups[keep[i]] for i in va}),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(result), encoding="utf-8")
    register_head(
        model_dir, name, version, head_path, labels_path,
        f"behaviour head: {len(y)} frames of {len(clips)} clips, {len(labels)} labels; "
        f"held-out accuracy {evaluation.accuracy:.2f}",
        task="behaviour",
    )  # fmt: skip
    return result
