"""A small card of real sample photos (people, animals, blanks, an unreadable file) and the
edge's settings over it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: card folder -> sample photos (paths under the shared camtrap folder)
CARD = {
    "StationA": [
        "jniedballa__camtrapR/inst/pictures/raw_images/StationA/IMG0001.JPG",
        "jniedballa__camtrapR/inst/pictures/raw_images/StationA/IMG0002.JPG",
    ],
    "StationB": [
        "jniedballa__camtrapR/inst/pictures/raw_images/StationB/IMG0001.JPG",
        "jniedballa__camtrapR/inst/pictures/raw_images/StationB/IMG0002.JPG",
    ],
    "gallery": [
        "microsoft__CameraTraps/demo/static/gallery/S1_F10_R1_PICT0104.JPG",
        "microsoft__CameraTraps/demo/static/gallery/S1_J08_R1_PICT0119.JPG",  # a person
        "microsoft__CameraTraps/demo/static/gallery/S1_M04_R1_PICT0095.JPG",
        "microsoft__CameraTraps/demo/static/gallery/S1_P07_R1_PICT0370.JPG",
    ],
    "misc": [
        "agentmorris__MegaDetector/images/mike_folder/heron_20241018021216_268.jpg",
        "conservationtechlab__animl-py/examples/Southwest/B013_IMG_0005_empty.jpeg",
        "conservationtechlab__animl-py/examples/Southwest/error_img.JPG",  # 0 bytes
    ],
}


@pytest.fixture
def card(tmp_path: Path, camtrap_dir: Path) -> Path:
    root = tmp_path / "card"
    for folder, files in CARD.items():
        (root / folder).mkdir(parents=True)
        for rel in files:
            shutil.copy2(camtrap_dir / rel, root / folder / Path(rel).name)
    return root


@pytest.fixture
def edge_settings(
    card: Path, tmp_path: Path, pulled_models: Path, model_mirror: Path
) -> Callable[..., Any]:
    from flows.edge.settings import EdgeSettings

    def make(upload: str | None = None, **overrides: Any) -> EdgeSettings:
        values: dict[str, Any] = {
            "card": card, "upload": upload or str(tmp_path / "up"),
            "state_dir": tmp_path / "state", "model_dir": pulled_models,
            "model_mirror": str(model_mirror), "retry_s": 0.0, "upload_attempts": 2,
            "device": "pi-test",
        }  # fmt: skip
        values.update(overrides)
        return EdgeSettings(**values)

    return make
