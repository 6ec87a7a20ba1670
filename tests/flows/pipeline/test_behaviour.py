"""Custom labels on clips: a behaviour head trained on a few labelled clips labels every sampled
frame of the next run's clips, the marts give each clip a timeline that covers it, `export
timeline` writes it as JSON, and `annotate` draws it into a clip PyAV plays back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models_ml.behaviour import LabelledClip, clips_from_csv
from models_ml.training import TrainingDataError, latest_trained
from tests.conftest import query

ZAMBA = "drivendataorg__zamba/tests/assets"
TRAIN = {
    "chimp": [f"{ZAMBA}/densepose_tests/chimp.mp4",
              f"{ZAMBA}/videos/data/raw/chimpandsee/Trip_5/card 1.2_location/PICT0074.ASF"],
    "other": [f"{ZAMBA}/videos/data/raw/savanna/Grumeti_Tanzania/G41_check2/09100029_Eland.MP4",
              f"{ZAMBA}/videos/data/raw/lope/Theo_codification_gorilla videos/2015/T37.0314.1632/"
              "EK000059.AVI"],
}  # fmt: skip
UNSEEN = [
    f"{ZAMBA}/videos/data/raw/noemie/Videos_All/Taï_T124/Taï_cam61_687002_647212_20161106/"
    "f4636736.avi",
    "jniedballa__camtrapR/inst/pictures/sample_images_species_dir/StationA/PBE/20251112_100312.mp4",
]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles read COLUMNS once, when flows.cli is first imported (by any test of
    the worker): lines are asserted whole, so they must not wrap."""
    from flows.cli import _app as cli_app

    monkeypatch.setattr(cli_app.console, "_width", 200)
    monkeypatch.setattr(cli_app.err, "_width", 200)


def test_clip_csv_segments(tmp_path: Path) -> None:
    csv_file = tmp_path / "clips.csv"
    csv_file.write_text(
        "clip,start_s,end_s,label\na.mp4,0,4.5,grooming\na.mp4,4.5,10,feeding\nb.mp4,2,3,x\n",
        encoding="utf-8",
    )
    clips = {c.path.name: c for c in clips_from_csv(csv_file)}
    a = clips["a.mp4"]
    assert a.path == tmp_path / "a.mp4"
    assert [a.label_at(t) for t in (0.0, 4.4, 4.5, 10.0, 10.5)] == [
        "grooming", "grooming", "feeding", "feeding", None,
    ]  # fmt: skip
    assert clips["b.mp4"].label_at(1.0) is None  # outside every segment: not used
    whole = LabelledClip(Path("c.mp4"), ((0.0, float("inf"), "walk"),))
    assert whole.label_at(123.0) == "walk"
    csv_file.write_text("clip,start_s,end_s,label\na.mp4,5,2,x\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match="line 2: needs a label and end_s after start_s"):
        clips_from_csv(csv_file)


@pytest.mark.slow
def test_a_behaviour_head_labels_every_sampled_frame_and_the_timeline_covers_each_clip(
    prefect_harness, trapflow_env, camtrap_dir, tmp_path, monkeypatch
):
    import av

    from flows.cli import app
    from flows.ingest import ingest

    model_dir = tmp_path / "models"
    shutil.copytree(trapflow_env["TRAPFLOW_MODEL_DIR"], model_dir)
    monkeypatch.setenv("TRAPFLOW_MODEL_DIR", str(model_dir))
    monkeypatch.chdir(tmp_path)
    labelled = tmp_path / "clips"
    for label, paths in TRAIN.items():
        (labelled / label).mkdir(parents=True)
        for rel in paths:
            shutil.copy2(camtrap_dir / rel, labelled / label / Path(rel).name)
    env = {"COLUMNS": "200"}
    res = CliRunner().invoke(app, ["train", "--clips", str(labelled)], env=env)
    assert res.exit_code == 0, res.output
    assert "behaviour_head@1" in res.output and "labels chimp, other" in res.output
    assert latest_trained(model_dir, "behaviour") == "behaviour_head"
    assert latest_trained(model_dir) is None  # a behaviour head is never the species model
    report = json.loads((model_dir / "trained/behaviour_head/v1/report.json").read_text())
    assert report["task"] == "behaviour" and len(report["validation_clips"]) == 2

    src = tmp_path / "cards"
    for rel in UNSEEN:
        (src / "cam1").mkdir(parents=True, exist_ok=True)
        shutil.copy2(camtrap_dir / rel, src / "cam1" / Path(rel).name)
    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh))
    clips = query(wh, "select media_id, frames_sampled, duration_s from raw.media")
    assert len(clips) == 2
    for media_id, sampled, duration in clips:
        labels = query(
            wh,
            "select count(*), count(distinct frame_number), min(label), "
            "count(*) filter (where label not in ('chimp', 'other')) "
            "from raw.frame_labels where media_id = ?",
            [media_id],
        )
        assert labels[0][:2] == (sampled, sampled) and labels[0][3] == 0  # every sampled frame
        segments = query(
            wh,
            "select start_s, end_s, frames from marts.fct_clip_timeline where media_id = ? "
            "order by segment_number",
            [media_id],
        )
        assert segments[0][0] == 0.0
        for (_, end, _), (start, _, _) in pairwise(segments):
            assert end == start  # no gap, no overlap
        assert segments[-1][1] == pytest.approx(duration)
        assert sum(n for _, _, n in segments) == sampled
    assert query(wh, "select count(*) from raw.classifications") == [(0,)]  # no species from it
    behaviour_s = query(wh, "select sum(seconds) from marts.fct_behaviour_time")[0][0]
    assert behaviour_s == pytest.approx(sum(d for _, _, d in clips), abs=1e-3)

    out = tmp_path / "timeline.json"
    res = CliRunner().invoke(app, ["export", "timeline", "--out", str(out), "--warehouse", str(wh)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["format"] == "trapflow-timeline" and len(doc["clips"]) == 2
    for clip in doc["clips"]:
        sampled = next(s for m, s, _ in clips if m == clip["media_id"])
        assert len(clip["frames"]) == sampled and clip["model"] == "behaviour_head@1"
        assert clip["segments"][-1]["end_s"] == pytest.approx(clip["duration_s"])

    annotated = tmp_path / "annotated.mp4"
    clip_path = src / "cam1" / Path(UNSEEN[0]).name
    res = CliRunner().invoke(
        app, ["annotate", str(clip_path), "--out", str(annotated), "--no-blur"], env=env
    )
    assert res.exit_code == 0, res.output
    assert "behaviour per frame:" in res.output
    with av.open(str(annotated)) as played:
        frames = sum(1 for _ in played.decode(video=0))
    assert frames == query(wh, "select max(frames_sampled) from raw.media")[0][0]

    # the dashboard's Population page shows the time per behaviour (no species here); in a
    # process of its own, as the dashboard runs (this one holds the warehouse open)
    script = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file(sys.argv[1], default_timeout=60)\n"
        "at.run()\n"
        "print(json.dumps({'error': [str(e.value) for e in at.exception],"
        " 'subheaders': [s.value for s in at.subheader],"
        " 'seconds': float(at.dataframe[0].value['seconds'].sum()) if at.dataframe else None}))\n"
    )
    app_file = Path(__file__).resolve().parents[3] / "dashboard" / "streamlit_app.py"
    shown = subprocess.run(
        [sys.executable, "-c", script, str(app_file)], capture_output=True, text=True,
        env={**os.environ, "TRAPFLOW_WAREHOUSE": str(wh)}, timeout=120, check=True,
        cwd=app_file.parents[1],  # .streamlit/config.toml: the dashboard listens on 127.0.0.1
    )  # fmt: skip
    page = json.loads(shown.stdout.strip().splitlines()[-1])
    assert page["error"] == [] and page["subheaders"] == ["Time per behaviour (clips)"]
    assert page["seconds"] == pytest.approx(behaviour_s)
