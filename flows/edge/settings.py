"""The edge's settings: a small dataclass (no pydantic on the box), from the command's options,
then ``TRAPFLOW_EDGE_*`` / ``TRAPFLOW_*`` variables, then defaults.

The rules are read from their owners, never written here: the counting thresholds and which
detectors count are dbt vars whose one literal each is in ``dbt/dbt_project.yml``
(``flows.dbt_vars.dbt_defaults``, the same defaults ``flows.settings.Settings`` has); the
inference floor and the decompression-bomb limit are ``models_ml``'s.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from flows.dbt_vars import dbt_defaults
from flows.errors import UserError
from models_ml import DEFAULT_MAX_PIXELS
from models_ml.detector import DEFAULT_CONF_FLOOR
from models_ml.media_types import PHOTO_EXTENSIONS  # clips need PyAV: not on the edge install
from models_ml.registry import default_mirror


class EdgeSettingsError(UserError, ValueError):
    """An edge setting trapflow cannot use (one line: which, and the fix)."""


def _env(name: str) -> str | None:
    value = os.environ.get(f"TRAPFLOW_EDGE_{name}") or os.environ.get(f"TRAPFLOW_{name}")
    return value.strip() if value and value.strip() else None


def _number(name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise EdgeSettingsError(f"TRAPFLOW_EDGE_{name}={value!r} is not a number") from None


def _thresholds() -> dict[str, float]:
    defaults = {k: float(v) for k, v in dbt_defaults()["detection_thresholds"].items()}
    for category in defaults:
        value = os.environ.get(f"TRAPFLOW_DETECTION_THRESHOLDS__{category.upper()}")
        if value:
            try:
                defaults[category] = float(value)
            except ValueError:
                raise EdgeSettingsError(
                    f"TRAPFLOW_DETECTION_THRESHOLDS__{category.upper()}={value!r} is not a "
                    "number; give a confidence within 0..1"
                ) from None
    return defaults


def _detectors() -> tuple[str, ...]:
    """The counting detectors (dbt vars animal_detector, person_vehicle_detector) unless
    TRAPFLOW_EDGE_DETECTORS names others ('' or 'none' in one slot: skip it)."""
    given = _env("DETECTORS")
    if given:
        return tuple(n.strip() for n in given.split(",") if n.strip() not in ("", "none"))
    defaults = dbt_defaults()
    names = (defaults["animal_detector"], defaults["person_vehicle_detector"])
    return tuple(str(n) for n in names if n)


@dataclass
class EdgeSettings:
    card: Path
    upload: str
    state_dir: Path = field(
        default_factory=lambda: Path(_env("STATE_DIR") or "~/.trapflow-edge").expanduser()
    )
    model_dir: Path = field(
        default_factory=lambda: Path(_env("MODEL_DIR") or "~/.trapflow/models").expanduser()
    )
    model_mirror: str | None = field(default_factory=default_mirror)
    detectors: tuple[str, ...] = field(default_factory=_detectors)
    detection_thresholds: dict[str, float] = field(default_factory=_thresholds)
    device: str = field(default_factory=lambda: _env("DEVICE") or socket.gethostname())
    #: Below this many MB free where the queue lives, no new photo is taken in.
    min_free_mb: float = field(default_factory=lambda: _number("MIN_FREE_MB", 256))
    #: Tries of one upload in a run before the run leaves it queued (a lost network).
    upload_attempts: int = field(default_factory=lambda: int(_number("UPLOAD_ATTEMPTS", 3)))
    retry_s: float = field(default_factory=lambda: _number("RETRY_S", 5.0))
    interval_s: float = field(default_factory=lambda: _number("INTERVAL", 60.0))
    #: Photos hashed and detected before a manifest is written (each run writes one at the end).
    manifest_every: int = field(default_factory=lambda: int(_number("MANIFEST_EVERY", 500)))
    inference_floor: float = DEFAULT_CONF_FLOOR
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    extensions: tuple[str, ...] = PHOTO_EXTENSIONS

    def __post_init__(self) -> None:
        self.card = Path(self.card).expanduser().absolute()
        self.state_dir = Path(self.state_dir).expanduser().absolute()
        self.model_dir = Path(self.model_dir).expanduser().absolute()
        if not self.card.is_dir():
            raise EdgeSettingsError(
                f"--card {self.card} is not a folder: give the mounted card (e.g. /media/card)"
            )
        if not self.upload:
            raise EdgeSettingsError("--upload is empty: give s3://bucket/prefix or a folder")
        bad = {k: v for k, v in self.detection_thresholds.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise EdgeSettingsError(f"detection thresholds {bad} must be within 0..1")
        if not self.detectors:
            raise EdgeSettingsError("no detector: set TRAPFLOW_EDGE_DETECTORS or unset it")
        if self.min_free_mb < 0 or self.upload_attempts < 1 or self.manifest_every < 1:
            raise EdgeSettingsError(
                "min_free_mb must be >= 0, upload_attempts and manifest_every >= 1"
            )

    @property
    def queue_path(self) -> Path:
        return self.state_dir / "queue.sqlite"

    @property
    def manifest_dir(self) -> Path:
        return self.state_dir / "manifests"
