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
    "verify",
]

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")


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

    @property
    def model_id(self) -> str:
        """``name@version``, the string stored with every detection."""
        return f"{self.name}@{self.version}"


def _spec_from_table(name: str, table: dict[str, Any]) -> ModelSpec:
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
    )


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelSpec]:
    """Read the registry: model name -> :class:`ModelSpec`."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {name: _spec_from_table(name, table) for name, table in data["models"].items()}
