"""The model registry: ``manifest.toml`` read into typed specs, and verified local copies.

Nothing here downloads in a constructor: :func:`load_manifest` only reads the manifest;
:func:`pull` is the one place that copies or downloads files, and it checks every SHA-256.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models_ml._fetch import (
    MIRROR_ENV,
    ModelError,
    ModelFetchError,
    ModelNotFoundError,
    ModelVerificationError,
    VerifyResult,
    default_mirror,
    pull,
    resolve,
    sha256_file,
    verify,
)

__all__ = [
    "MANIFEST_PATH",
    "MIRROR_ENV",
    "ExtraFile",
    "InputSpec",
    "ModelError",
    "ModelFetchError",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelVerificationError",
    "OutputSpec",
    "VerifyResult",
    "default_mirror",
    "load_manifest",
    "pull",
    "resolve",
    "sha256_file",
    "user_spec",
    "verify",
]

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")

#: The input of a species head (see docs/models.md): L2-normalised embeddings [N, 1280].
HEAD_INPUT: dict[str, Any] = {"name": "embedding", "size": [1280, 1], "channels": "", "scale": ""}

#: Defaults for models users register in trapflow.toml, by decoder.
USER_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    # MegaDetector v5a/v5b as exported by YOLOv5's export.py: 1280 px, centred letterbox, x/255
    "yolov5": {"kind": "detector", "size": [1280, 1280], "channels": "RGB", "scale": "0-1",
               "pad_value": 114, "placement": "center", "dynamic_batch": False},
    # MegaDetector v6 (ultralytics YOLOv8/9/10-style export: [N, 4 + C, A], no objectness)
    "yolov8": {"kind": "detector", "size": [640, 640], "channels": "RGB", "scale": "0-1",
               "pad_value": 114, "placement": "center", "dynamic_batch": False},
    "yolox_decoded": {"kind": "detector", "size": [640, 640], "channels": "RGB",
                      "scale": "0-255", "pad_value": 0, "placement": "top-left",
                      "dynamic_batch": False},
    # a species classifier on crops (SpeciesNet-style): logits or probabilities over labels
    "softmax": {"kind": "classifier", "size": [224, 224], "channels": "RGB",
                "scale": "imagenet", "dynamic_batch": True},
    "probabilities": {"kind": "classifier", "size": [224, 224], "channels": "RGB",
                      "scale": "imagenet", "dynamic_batch": True},
    "embedding_head": {"kind": "classifier", "embedder": "mobilenetv2_imagenet_features"},
}  # fmt: skip

_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


@dataclass(frozen=True)
class InputSpec:
    name: str
    size: tuple[int, int]  # width, height
    channels: str  # "RGB" or "BGR"
    scale: str  # "0-255" or "imagenet"
    pad_value: int = 0
    placement: str = "top-left"
    dynamic_batch: bool = False
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


@dataclass(frozen=True)
class OutputSpec:
    name: str
    decoder: str  # yolox_decoded | yolox_raw | embedding | softmax
    nms_iou: float = 0.45
    default_conf: float = 0.25
    strides: tuple[int, ...] = (8, 16, 32)


@dataclass(frozen=True)
class ExtraFile:
    file: str
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    kind: str  # detector | classifier | embedder | ocr
    file: str  # path relative to the mirror / models dir
    sha256: str
    size: int
    licence: str
    input: InputSpec
    output: OutputSpec
    description: str = ""
    url: str = ""  # official URL, empty when mirror-only
    labels: tuple[str, ...] = ()
    labels_file: str | None = None
    groups_file: str | None = None
    categories: dict[str, str] = field(default_factory=dict)
    extra_files: tuple[ExtraFile, ...] = ()
    embedder: str | None = None  # decoder "embedding_head": the embedder model it reads
    location: str | None = None  # user-registered model: absolute folder holding its files
    geofence_file: str | None = None  # a species head's own site lists (the sites it knows)

    def files_dir(self, model_dir: Path) -> Path:
        """Where this model's files are: its own folder (user models) or ``model_dir``."""
        return Path(self.location) if self.location else Path(model_dir)

    @property
    def model_id(self) -> str:
        """``name@version``, the string stored with every detection."""
        return f"{self.name}@{self.version}"


def _spec_from_table(name: str, table: dict[str, Any]) -> ModelSpec:
    if table.get("output", {}).get("decoder") == "embedding_head":
        table = {"input": dict(HEAD_INPUT), **table}
    inp = dict(table["input"])
    inp["size"] = tuple(inp["size"])
    inp["mean"] = tuple(inp.get("mean", ()))
    inp["std"] = tuple(inp.get("std", ()))
    out = dict(table["output"])
    if "strides" in out:
        out["strides"] = tuple(out["strides"])
    return ModelSpec(
        name=name,
        version=str(table["version"]),
        kind=table["kind"],
        file=table["file"],
        sha256=table["sha256"].lower(),
        size=int(table["size"]),
        licence=table["licence"],
        input=InputSpec(**inp),
        output=OutputSpec(**out),
        description=table.get("description", ""),
        url=table.get("url", ""),
        labels=tuple(table.get("labels", ())),
        labels_file=table.get("labels_file"),
        groups_file=table.get("groups_file"),
        categories=dict(table.get("categories", {})),
        extra_files=tuple(ExtraFile(**e) for e in table.get("extra_files", ())),
        embedder=table.get("embedder"),
        location=table.get("location"),
        geofence_file=table.get("geofence_file"),
    )


def load_manifest(
    path: Path = MANIFEST_PATH, user_models: dict[str, dict[str, Any]] | None = None
) -> dict[str, ModelSpec]:
    """Read the registry: model name -> :class:`ModelSpec`, plus ``user_models`` if given."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    specs = {name: _spec_from_table(name, table) for name, table in data["models"].items()}
    for name, table in (user_models or {}).items():
        if name in specs:
            raise ModelError(
                f"user model {name!r} has the name of a registry model; pick another name "
                "for it under [models] in trapflow.toml"
            )
        specs[name] = user_spec(name, table)
    return specs


def user_spec(name: str, table: dict[str, Any]) -> ModelSpec:
    """A model a user registered by path and SHA-256 (``[models.<name>]`` in trapflow.toml).

    Required: ``file`` (path to the ONNX file), ``sha256`` and ``decoder`` (``yolov5`` for
    MegaDetector v5a/v5b, ``yolov8`` for v6 YOLOv9/v10-style exports, ``yolox_decoded``,
    ``softmax``/``probabilities`` for a crop classifier, ``embedding_head`` for a species
    head). Optional: ``version``, ``size`` [w, h], ``labels`` or ``labels_file``,
    ``input_name``/``output_name`` (default: the model's only input/output), ``channels``,
    ``scale``, ``pad_value``, ``placement``, ``nms_iou``, ``embedder``, ``licence``,
    ``geofence_file`` (a species head's own site lists, ``models_ml.geofence``).
    Relative paths are relative to the model file's folder.
    """
    missing = [k for k in ("file", "sha256", "decoder") if not table.get(k)]
    decoder = str(table.get("decoder", ""))
    if missing or decoder not in USER_MODEL_DEFAULTS:
        raise ModelError(
            f"user model {name!r}: "
            + (f"missing {', '.join(missing)}; " if missing else "")
            + f"decoder must be one of {', '.join(sorted(USER_MODEL_DEFAULTS))} "
            "(e.g. [models.my_mdv5] file = '/models/md_v5a.onnx', sha256 = '...', "
            "decoder = 'yolov5' in trapflow.toml)"
        )
    defaults = USER_MODEL_DEFAULTS[decoder]
    path = Path(str(table["file"])).expanduser()
    if not path.is_absolute():
        raise ModelError(f"user model {name!r}: file must be an absolute path, got {path}")
    sha = str(table["sha256"]).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"user model {name!r}: sha256 must be 64 hex digits")

    def rel(value: str) -> str:
        p = Path(value).expanduser()
        return str(p.relative_to(path.parent)) if p.is_absolute() else value

    labels_file = table.get("labels_file")
    if labels_file:
        labels_file = rel(str(labels_file))
    geofence_file = table.get("geofence_file")
    if geofence_file:
        geofence_file = rel(str(geofence_file))
    spec: dict[str, Any] = {
        "version": str(table.get("version", sha[:8])),
        "kind": table.get("kind", defaults["kind"]),
        "file": path.name,
        "sha256": sha,
        "size": path.stat().st_size if path.is_file() else 0,
        "licence": table.get("licence", "user-supplied"),
        "description": table.get("description", f"user-registered {decoder} model"),
        "labels": list(table.get("labels", [])),
        "labels_file": labels_file,
        "geofence_file": geofence_file,
        "categories": dict(table.get("categories", {})),
        "embedder": table.get("embedder", defaults.get("embedder")),
        "location": str(path.parent),
        "output": {
            "name": str(table.get("output_name", "")),
            "decoder": decoder,
            "nms_iou": float(table.get("nms_iou", 0.45)),
        },
    }
    if decoder != "embedding_head":
        scale = table.get("scale", defaults["scale"])
        spec["input"] = {
            "name": str(table.get("input_name", "")),
            "size": list(table.get("size", defaults["size"])),
            "channels": table.get("channels", defaults["channels"]),
            "scale": scale,
            "pad_value": int(table.get("pad_value", defaults.get("pad_value", 0))),
            "placement": table.get("placement", defaults.get("placement", "top-left")),
            "dynamic_batch": bool(table.get("dynamic_batch", defaults["dynamic_batch"])),
            **(_IMAGENET if scale == "imagenet" else {}),
        }
    if not spec["output"]["name"] and decoder == "embedding_head":
        spec["output"]["name"] = "probabilities"
    return _spec_from_table(name, spec)
