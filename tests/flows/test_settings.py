"""flows.settings: the settings own every dbt var, and dbt_project.yml owns every default."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from flows import settings as settings_module
from flows.settings import DBT_PROJECT_FILE, Settings, SettingsError, load_settings


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's trapflow.toml (empty until a test writes it), and no TRAPFLOW_* of the caller."""
    for name in list(os.environ):
        if name.startswith("TRAPFLOW_"):
            monkeypatch.delenv(name)
    path = tmp_path / "trapflow.toml"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("TRAPFLOW_CONFIG", str(path))
    return path


def _declared() -> dict[str, object]:
    project = yaml.safe_load(DBT_PROJECT_FILE.read_text(encoding="utf-8"))
    return dict(project["vars"])


def test_dbt_vars_passes_exactly_the_vars_dbt_project_declares(toml: Path) -> None:
    passed = load_settings().dbt_vars()
    declared = _declared()
    missing = sorted(set(declared) - set(passed))
    assert not missing, (
        f"dbt_project.yml declares vars Settings.dbt_vars() does not pass: {missing}"
    )
    unknown = sorted(set(passed) - set(declared))
    assert not unknown, (
        f"Settings.dbt_vars() passes vars dbt_project.yml does not declare: {unknown}"
    )


def test_default_settings_give_dbt_project_defaults(toml: Path) -> None:
    """One literal per default: unset settings pass dbt exactly what dbt_project.yml says."""
    passed = json.loads(json.dumps(load_settings().dbt_vars()))  # as dbt receives them
    assert passed == _declared()


def test_settings_module_holds_no_copy_of_the_counting_defaults() -> None:
    source = Path(settings_module.__file__ or "").read_text(encoding="utf-8")
    for literal in ('"animal": 0.25', "0.25", '"mdlite_yolox_tiny"', '"yolox_nano_coco"',
                    '"mobilenetv2_12_int8_imagenet"', '"rhinoceros"'):  # fmt: skip
        assert literal not in source, f"{literal} is dbt_project.yml's default, not settings.py's"


def test_user_values_reach_every_dbt_var(toml: Path) -> None:
    toml.write_text(
        'animal_model = "my_md"\n'
        'general_model = "my_general"\n'
        'person_cue_model = ""\n'
        "independence_minutes = 15\n"
        'independence_mode = "last_record"\n'
        "camera_down_gap_days = 3\n"
        "listed_downtime_from_gaps = true\n"
        "min_effort_trap_nights = 2\n"
        "classification_threshold = 0.7\n"
        'trend_period = "week"\n'
        "trend_alpha = 0.1\n"
        'sensitive_species = ["pangolin"]\n'
        "sensitive_grid_km = 25\n"
        "confidence_level = 0.9\n"
        "bootstrap_replicates = 200\n"
        "bootstrap_seed = 7\n"
        'bootstrap_unit = "deployment"\n'
        "silent_camera_gap_quantile = 0.5\n"
        "silent_camera_gap_factor = 2\n"
        "silent_camera_min_hours = 6\n"
        "silent_camera_min_gaps = 4\n"
        "[detection_thresholds]\nanimal = 0.4\n",
        encoding="utf-8",
    )
    passed = load_settings().dbt_vars()
    assert passed == {
        "detection_thresholds": {"animal": 0.4, "person": 0.5, "vehicle": 0.5},
        "animal_detector": "my_md",
        "person_vehicle_detector": "my_general",
        "person_cue_detector": "",
        "classification_threshold": 0.7,
        "independence_minutes": 15,
        "independence_mode": "last_record",
        "camera_down_gap_days": 3,
        "listed_downtime_from_gaps": True,
        "min_effort_trap_nights": 2,
        "trend_period": "week",
        "trend_alpha": 0.1,
        "sensitive_species": ["pangolin"],
        "sensitive_grid_km": 25,
        "time_check_tolerance_minutes": 5,
        "time_check_min_photos": 10,
        "time_check_min_share": 0.6,
        "day_night_sun_degrees": 6,
        "confidence_level": 0.9,
        "bootstrap_replicates": 200,
        "bootstrap_seed": 7,
        "bootstrap_unit": "deployment",
        "silent_camera_gap_quantile": 0.5,
        "silent_camera_gap_factor": 2,
        "silent_camera_min_hours": 6,
        "silent_camera_min_gaps": 4,
    }
    assert set(passed) == set(_declared())


def test_environment_reaches_the_detector_vars(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/formats.md: TRAPFLOW_ANIMAL_MODEL=<imported model> makes the marts count it."""
    monkeypatch.setenv("TRAPFLOW_ANIMAL_MODEL", "md_v5a.0.0")
    monkeypatch.setenv("TRAPFLOW_GENERAL_MODEL", "md_v5a.0.0")
    passed = Settings().dbt_vars()
    assert passed["animal_detector"] == passed["person_vehicle_detector"] == "md_v5a.0.0"


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("independence_minutes = -5", "independence_minutes"),
        ('independence_mode = "rolling"', "independence_mode"),
        ('trend_period = "year"', "trend_period"),
        ("classification_threshold = 1.5", "classification_threshold"),
        ("[detection_thresholds]\nanimal = 2", "detection_thresholds"),
        ("[detection_thresholds]\nanimals = 0.3", "unknown category animals"),
        ('sensitive_grid_km = "far"', "sensitive_grid_km"),
    ],
)
def test_a_wrong_value_in_trapflow_toml_is_one_clear_line(
    toml: Path, line: str, named: str
) -> None:
    toml.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert named in message
    assert message.startswith("invalid setting: ")
    assert str(toml) in message  # where to fix it


def test_a_misspelt_setting_in_trapflow_toml_is_refused_not_ignored(toml: Path) -> None:
    """animal_modle = "my_md" would otherwise leave the default detector counted, silently."""
    toml.write_text('animal_modle = "my_md"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and str(toml) in message
    assert "'animal_modle' is no trapflow setting" in message
    assert "did you mean 'animal_model'?" in message


def test_trapflow_toml_that_is_not_toml_is_one_clear_line(toml: Path) -> None:
    toml.write_text("animal_model = \n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"is not valid TOML \(.*line 1") as caught:
        load_settings()
    assert "\n" not in str(caught.value) and str(toml) in str(caught.value)
