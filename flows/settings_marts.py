"""The settings that are dbt vars (marts, effort, intervals, camera health, clock checks,
privacy): one group of ``flows.settings.Settings``' fields, kept here so each module reads in
one sitting. Their defaults are dbt_project.yml's: dbt owns the rules, these only pass values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from flows.dbt_vars import dbt_default, dbt_defaults

CATEGORIES = ("animal", "person", "vehicle")  # MegaDetector's categories 1, 2, 3


def listed(value: Any) -> tuple[str, ...]:
    """A list setting from the environment: 'a,b' or a JSON list '["a", "b"]'."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    return tuple(str(v).strip() for v in value if str(v).strip())


class MartSettings(BaseModel):
    # Marts: each of these is a dbt var; the defaults are dbt_project.yml's (dbt owns the rules)
    detection_thresholds: dict[str, float] = Field(
        default_factory=dbt_default("detection_thresholds"),
        description="Minimum confidence per category counted by the marts (dbt var).",
    )
    build_marts: bool = Field(default=True, description="Run dbt build after each ingest.")
    # Population marts (docs/marts.md; each is a dbt var)
    deployments_csv: Path | None = Field(
        default=None,
        description="Station table loaded before the marts are built: a camtrapR CTtable or "
        "a Camtrap DP-like deployments.csv; without it, deployments are inferred from the images.",
    )
    # How to read a camtrapR CTtable (cameraOperation's arguments; docs/effort.md)
    station_date_format: str = Field(
        default="ymd",
        description="Setup/retrieval/problem format: lubridate orders (dmy, 'ymd HM') or "
        "strptime (%d/%m/%Y); with an hour, effort is exact, else setup/retrieval are at 12:00.",
    )
    station_column: str = Field(default="Station", description="CTtable station column.")
    station_camera_column: str | None = Field(
        default=None,
        description="CTtable camera column (camtrapR cameraCol); none: one per station.",
    )
    station_session_column: str | None = Field(
        default=None, description="CTtable session column (camtrapR sessionCol)."
    )
    station_setup_column: str = Field(default="Setup_date", description="CTtable setup column.")
    station_retrieval_column: str = Field(
        default="Retrieval_date", description="CTtable retrieval column."
    )
    station_x_column: str | None = Field(
        default=None, description="CTtable x / longitude column (e.g. utm_x)."
    )
    station_y_column: str | None = Field(
        default=None, description="CTtable y / latitude column (e.g. utm_y)."
    )
    station_crs: str = Field(
        default="EPSG:4326", description="CRS of the CTtable's x/y (e.g. EPSG:32650 for UTM 50N)."
    )
    station_timezone: str | None = Field(
        default=None, description="IANA time zone of every station (e.g. Asia/Kuching)."
    )
    station_timezone_column: str | None = Field(
        default=None, description="CTtable column with each station's IANA time zone."
    )
    time_shift_table: Path | None = Field(
        default=None,
        description="camtrapR timeShiftTable CSV (Station, camera, timeshift, sign) loaded "
        "before the marts are built.",
    )
    independence_minutes: float = Field(
        default_factory=dbt_default("independence_minutes"),
        gt=0.0,
        description="Detections of a species closer than this are one event.",
    )
    independence_mode: Literal["last_independent", "last_record"] = Field(
        default_factory=dbt_default("independence_mode"),
        description="Compare to the event's first record (camtrapR lastIndependentRecord) "
        "or to the previous record (lastRecord).",
    )
    camera_down_gap_days: float = Field(
        default_factory=dbt_default("camera_down_gap_days"),
        gt=0.0,
        description="Gaps between images longer than this are down days.",
    )
    listed_downtime_from_gaps: bool = Field(
        default_factory=dbt_default("listed_downtime_from_gaps"),
        description="Infer down days from image gaps in listed deployments too (where their "
        "table has no problem columns); camtrapR and Camtrap DP do not.",
    )
    min_effort_trap_nights: float = Field(
        default_factory=dbt_default("min_effort_trap_nights"),
        ge=0.0,
        description="Rolling windows with less effort get no statistics.",
    )
    classification_threshold: float = Field(
        default_factory=dbt_default("classification_threshold"),
        ge=0.0,
        le=1.0,
        description="Minimum top-1 probability of a species label.",
    )
    trend_period: Literal["week", "month"] = Field(
        default_factory=dbt_default("trend_period"),
        description="Periods of the population trend test (fct_population_trend).",
    )
    trend_alpha: float = Field(
        default_factory=dbt_default("trend_alpha"),
        gt=0.0,
        le=1.0,
        description="A trend is reported when the Mann-Kendall p is below this.",
    )
    # RAI intervals (marts.fct_rai_intervals): the bootstrap's settings are dbt vars too
    confidence_level: float = Field(
        default_factory=dbt_default("confidence_level"),
        gt=0.0,
        lt=1.0,
        description="Coverage of the bootstrap interval of RAI (0.95: 2.5th to 97.5th percentile).",
    )
    bootstrap_replicates: int = Field(
        default_factory=dbt_default("bootstrap_replicates"),
        ge=1,
        le=100_000,
        description="Bootstrap resamples per site x period x species.",
    )
    bootstrap_seed: int = Field(
        default_factory=dbt_default("bootstrap_seed"),
        ge=0,
        description="Seed of the bootstrap (with a hash of each group's key).",
    )
    bootstrap_unit: Literal["camera_day", "deployment"] = Field(
        default_factory=dbt_default("bootstrap_unit"),
        description="What the bootstrap resamples: camera-days or whole deployments.",
    )
    # Camera health (marts.live_camera_gaps, the 'silent' alert rule); dbt vars
    silent_camera_gap_quantile: float = Field(
        default_factory=dbt_default("silent_camera_gap_quantile"), gt=0.0, le=1.0,
        description="A camera's usual gap: this quantile of the hours between its photos.",
    )  # fmt: skip
    silent_camera_gap_factor: float = Field(
        default_factory=dbt_default("silent_camera_gap_factor"), gt=0.0,
        description="Silent once its last photo is older than this many usual gaps.",
    )  # fmt: skip
    silent_camera_min_hours: float = Field(
        default_factory=dbt_default("silent_camera_min_hours"), ge=0.0,
        description="... and at least this many hours.",
    )  # fmt: skip
    silent_camera_min_gaps: int = Field(
        default_factory=dbt_default("silent_camera_min_gaps"), ge=1,
        description="Gaps needed to know a camera's rhythm (fewer: never silent).",
    )  # fmt: skip

    # Clock checks (marts.fct_time_problems); dbt vars, defaults in dbt_project.yml
    time_check_tolerance_minutes: float = Field(
        default_factory=dbt_default("time_check_tolerance_minutes"),
        gt=0.0,
        description="EXIF and the info bar's or file's time further apart than this disagree.",
    )
    time_check_min_photos: int = Field(
        default_factory=dbt_default("time_check_min_photos"),
        ge=1,
        description="A camera's clock is checked with at least this many photos.",
    )
    time_check_min_share: float = Field(
        default_factory=dbt_default("time_check_min_share"),
        gt=0.0,
        le=1.0,
        description="A clock problem: this share disagrees, and agrees once shifted.",
    )
    day_night_sun_degrees: float = Field(
        default_factory=dbt_default("day_night_sun_degrees"),
        ge=0.0,
        le=30.0,
        description="Colour photos below -this sun elevation, greyscale above it, disagree.",
    )

    # Privacy (flows/access/privacy.py): shown and exported coordinates of these taxa are
    # generalised; dbt vars too (dbt decides which sites are sensitive)
    sensitive_species: Annotated[tuple[str, ...], NoDecode] = Field(
        default_factory=dbt_default("sensitive_species"),
        description="Taxa whose locations are generalised (substring match on the label; add "
        "IUCN CR/EN species you work with).",
    )
    sensitive_grid_km: float = Field(
        default_factory=dbt_default("sensitive_grid_km"),
        ge=0.0,
        description="Grid cell (km) sensitive coordinates are rounded to.",
    )

    @field_validator("sensitive_species", mode="before")
    @classmethod
    def _split_species(cls, value: Any) -> Any:
        return listed(value)

    @field_validator("detection_thresholds")
    @classmethod
    def _check_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CATEGORIES))
        if unknown:
            raise ValueError(
                f"unknown categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                f"use {', '.join(CATEGORIES)}"
            )
        merged = {**dbt_defaults()["detection_thresholds"], **value}
        for key, threshold in merged.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"detection_thresholds.{key}={threshold} must be within 0..1")
        return merged
