"""Which setting gives each dbt var, and the vars' defaults: dbt owns the rules and their one
literal each (dbt_project.yml ``vars:``); :class:`flows.settings.Settings` reads its defaults
from here and passes every var on each build (``Settings.dbt_vars``)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

DBT_PROJECT_FILE = Path(__file__).resolve().parents[1] / "dbt" / "dbt_project.yml"

#: Every dbt var of dbt_project.yml and the setting that gives its value. dbt owns the rules
#: and their defaults (dbt_project.yml ``vars:``); the settings read those defaults from there
#: and pass every var on each build (Settings.dbt_vars).
DBT_VAR_SETTINGS: dict[str, str] = {
    "detection_thresholds": "detection_thresholds",
    "animal_detector": "animal_model",
    "person_vehicle_detector": "general_model",
    "person_cue_detector": "person_cue_model",
    "classification_threshold": "classification_threshold",
    "independence_minutes": "independence_minutes",
    "independence_mode": "independence_mode",
    "camera_down_gap_days": "camera_down_gap_days",
    "listed_downtime_from_gaps": "listed_downtime_from_gaps",
    "min_effort_trap_nights": "min_effort_trap_nights",
    "trend_period": "trend_period",
    "trend_alpha": "trend_alpha",
    "sensitive_species": "sensitive_species",
    "sensitive_grid_km": "sensitive_grid_km",
    "time_check_tolerance_minutes": "time_check_tolerance_minutes",
    "time_check_min_photos": "time_check_min_photos",
    "time_check_min_share": "time_check_min_share",
    "day_night_sun_degrees": "day_night_sun_degrees",
    "confidence_level": "confidence_level",
    "bootstrap_replicates": "bootstrap_replicates",
    "bootstrap_seed": "bootstrap_seed",
    "bootstrap_unit": "bootstrap_unit",
    "silent_camera_gap_quantile": "silent_camera_gap_quantile",
    "silent_camera_gap_factor": "silent_camera_gap_factor",
    "silent_camera_min_hours": "silent_camera_min_hours",
    "silent_camera_min_gaps": "silent_camera_min_gaps",
}


@functools.cache
def dbt_defaults() -> dict[str, Any]:
    """The vars dbt_project.yml declares, with their defaults (the one literal of each)."""
    import yaml  # type: ignore[import-untyped]

    project = yaml.safe_load(DBT_PROJECT_FILE.read_text(encoding="utf-8"))
    return dict(project.get("vars") or {})


def dbt_default(var: str) -> Callable[[], Any]:
    """A default_factory: dbt_project.yml's default of ``var`` (a fresh copy each time)."""

    def factory() -> Any:
        return copy.deepcopy(dbt_defaults()[var])

    return factory
