"""One typed settings object for the whole pipeline.

Values come, highest first, from: explicit arguments (the CLI's options), ``TRAPFLOW_*``
environment variables, a ``trapflow.toml`` file (path in ``TRAPFLOW_CONFIG``, else
``./trapflow.toml``), then the defaults below. Nested values use ``__`` in the environment,
e.g. ``TRAPFLOW_DETECTION_THRESHOLDS__PERSON=0.6``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MEDIA_EXTENSIONS = ("jpg", "jpeg", "png", "tif", "tiff")


def _default_mirror() -> str | None:
    """The model mirror of this repo's checkouts: ``../shared/models`` when it exists."""
    beside = REPO_ROOT.parent / "shared" / "models"
    return str(beside) if beside.is_dir() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRAPFLOW_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    # Where things are
    source: str = Field(
        default="inbox",
        description="Folder or fsspec URL (s3://bucket/prefix) polled for new media.",
    )
    home: Path = Field(
        default=Path(".trapflow"),
        description="Working folder: the default warehouse, verified models and dbt's scratch.",
    )
    warehouse: Path | None = Field(
        default=None, description="DuckDB file of the warehouse (default: <home>/warehouse.duckdb)."
    )
    model_dir: Path | None = Field(
        default=None, description="Where verified model files live (default: <home>/models)."
    )
    model_mirror: str | None = Field(
        default_factory=_default_mirror,
        description="Folder or http(s) base URL the models are pulled from.",
    )

    # What to pick up and how to name it
    layout: str | None = Field(
        default=None,
        description="Folder pattern naming site and camera, e.g. '{site}/{camera}/...'. "
        "Without it, site and camera are the parent folder's name.",
    )
    extensions: tuple[str, ...] = Field(
        default=MEDIA_EXTENSIONS, description="Image extensions picked up (case-insensitive)."
    )
    max_image_pixels: int = Field(
        default=80_000_000,
        description="Larger images are quarantined as decompression bombs, before decoding.",
    )

    # Inference
    animal_model: str = Field(default="mdlite_yolox_tiny", description="Detector for animals.")
    general_model: str = Field(
        default="yolox_nano_coco", description="Detector for persons and vehicles."
    )
    person_cue_model: str | None = Field(
        default="mobilenetv2_12_int8_imagenet",
        description="ImageNet classifier looking for apparel and gear in animal boxes "
        "(a second opinion on people); empty to switch off.",
    )
    inference_floor: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Boxes below this are not stored."
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="onnxruntime threads per session (0: one per core)."
    )
    batch_size: int = Field(default=32, ge=1, description="Images per task and per transaction.")

    # Marts
    detection_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"animal": 0.25, "person": 0.5, "vehicle": 0.5},
        description="Minimum confidence per category counted by the marts (dbt var).",
    )
    build_marts: bool = Field(default=True, description="Run dbt build after each ingest.")

    # Serving
    interval: int = Field(default=60, ge=1, description="Seconds between polls (serve).")

    @field_validator("extensions", mode="before")
    @classmethod
    def _lower_extensions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(str(v).strip().lower().lstrip(".") for v in value)

    @field_validator("detection_thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        merged = {"animal": 0.25, "person": 0.5, "vehicle": 0.5, **value}
        for key, threshold in merged.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"detection_thresholds.{key}={threshold} must be within 0..1")
        return merged

    @property
    def model_names(self) -> list[str]:
        """Every model a run uses."""
        names = [self.animal_model, self.general_model, self.person_cue_model]
        return [n for n in names if n]

    @property
    def warehouse_path(self) -> Path:
        return (self.warehouse or self.home / "warehouse.duckdb").expanduser().absolute()

    @property
    def model_path(self) -> Path:
        return (self.model_dir or self.home / "models").expanduser().absolute()

    @property
    def scratch_path(self) -> Path:
        """dbt's target and log folders, kept beside the warehouse they describe."""
        return self.warehouse_path.parent / (self.warehouse_path.stem + ".dbt")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("TRAPFLOW_CONFIG", "trapflow.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Settings with the given overrides (``None`` values are ignored, as unset CLI options)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
