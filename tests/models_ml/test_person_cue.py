"""The apparel-and-gear cue: post-processing on exact numbers, then the real models."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models_ml import ApparelPersonCue, BBox, Detection, DetectorEnsemble, load_rgb
from models_ml.registry import load_manifest
from models_ml.session import create_session


class _NoSession:
    pass


def _cue(labels: list[str]) -> ApparelPersonCue:
    spec = load_manifest()["mobilenetv2_12_int8_imagenet"]
    return ApparelPersonCue(_NoSession(), spec, labels)  # type: ignore[arg-type]


def test_confidence_is_box_times_gear_probability():
    cue = _cue(["red fox", "rifle", "jersey", "rock"])
    box = Detection("animal", "animal", 0.8, BBox(0.1, 0.1, 0.2, 0.2), "mdlite@1")
    probs = np.array([[0.1, 0.5, 0.25, 0.15], [0.9, 0.02, 0.03, 0.05]])
    out = cue.postprocess(probs, [box, box], conf_floor=0.05)
    assert len(out) == 1  # the second crop is a fox: 0.8 * 0.05 = 0.04 < floor
    (person,) = out
    assert person.category == "person"
    assert person.label == "rifle"  # the most likely gear class, not the overall top class
    assert person.confidence == pytest.approx(0.8 * 0.75)
    assert person.bbox == box.bbox


def test_a_classifier_without_gear_classes_is_refused():
    with pytest.raises(ValueError, match="apparel"):
        _cue(["red fox", "rock"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "person"),
    [
        # a grey shirt at the lens: YOLOX-nano says person 0.07, MegadetectorLite "animal" 0.82
        ("conservationtechlab__animl-py/examples/Southwest/B012_2021-05-27_human.jpg", True),
        ("agentmorris__MegaDetector/images/idaho-camera-traps.jpg", False),  # cougar
        ("google__cameratrapai/test_data/african_elephants.jpg", False),
    ],
)
def test_real_photos(camtrap_dir: Path, model_mirror: Path, path: str, person: bool):
    ensemble = DetectorEnsemble.from_models_dir(
        model_mirror, person_cue_model="mobilenetv2_12_int8_imagenet"
    )
    img = load_rgb((camtrap_dir / path).read_bytes(), draft_size=ensemble.draft_size)
    cue = [d for d in ensemble.detect(img) if d.model.startswith("mobilenetv2_12_int8")]
    best = max((d.confidence for d in cue), default=0.0)
    assert (best >= 0.5) is person, (path, best, cue)


@pytest.mark.parametrize(("vnni", "precision"), [(False, "1"), (True, "0")])
def test_sessions_ask_for_int8_kernels_that_do_not_saturate(
    model_mirror: Path, monkeypatch: pytest.MonkeyPatch, vnni: bool, precision: str
):
    """U8U8 without VNNI (U8S8 saturates there); VNNI's exact U8S8 kernels where it has it."""
    from models_ml import session as _session

    monkeypatch.setattr(_session, "has_vnni", lambda: vnni)
    spec = load_manifest()["mobilenetv2_12_int8_imagenet"]
    session = create_session(model_mirror / spec.file)
    options = session.get_session_options()
    assert options.get_session_config_entry("session.x64quantprecision") == precision


_CUE_SCORE = """
import sys
from pathlib import Path
from models_ml import DetectorEnsemble, load_rgb
ens = DetectorEnsemble.from_models_dir(Path(sys.argv[1]), person_cue_model=sys.argv[2])
img = load_rgb(Path(sys.argv[3]).read_bytes(), draft_size=ens.draft_size)
print(max(d.confidence for d in ens.detect(img) if d.model.startswith(sys.argv[2])))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine() != "x86_64" or shutil.which("qemu-x86_64") is None,
    reason="needs qemu-user (Debian: apt-get install qemu-user) to emulate a CPU without VNNI",
)
def test_an_avx2_only_cpu_scores_the_person_as_this_one_does(camtrap_dir: Path, model_mirror: Path):
    """CI machines without VNNI scored the grey shirt 0.08 (U8S8 saturation), this one 0.53."""
    photo = (
        camtrap_dir / "conservationtechlab__animl-py/examples/Southwest/B012_2021-05-27_human.jpg"
    )
    args = [str(model_mirror), "mobilenetv2_12_int8_imagenet", str(photo)]
    here = subprocess.run(
        [sys.executable, "-c", _CUE_SCORE, *args], capture_output=True, text=True, check=True
    )
    haswell = subprocess.run(
        ["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", _CUE_SCORE, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert float(here.stdout) >= 0.5
    assert abs(float(haswell.stdout) - float(here.stdout)) < 0.01, (here.stdout, haswell.stdout)
