"""Labels people already gave come in as human labels: a `{species}` folder (camtrapR's species
directories), XMP keywords (camtrapR's species tags, as digiKam writes them), a Timelapse or
file,label CSV. They count in the marts right after, a re-import adds nothing, and a photo
whose sources disagree is reported and counts by neither."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.pipeline.labels import LabelCsvError, category_of, read_label_csv
from models_ml.keywords import species_keywords
from tests.conftest import query

CAMTRAPR = "jniedballa__camtrapR/inst/pictures"


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles read COLUMNS once, when flows.cli is first imported (by any test of
    the worker): lines are asserted whole, so they must not wrap."""
    from flows.cli import _app as cli_app

    monkeypatch.setattr(cli_app.console, "_width", 200)
    monkeypatch.setattr(cli_app.err, "_width", 200)


def _manifest(manifest_rows: list[dict[str, str]], part: str) -> list[dict[str, str]]:
    return [r for r in manifest_rows if f"/{part}/" in r["path"] and r["kind"] == "image"]


def test_xmp_species_tags_are_the_manifest_s_labels(manifest_rows, camtrap_dir):
    """Every camtrapR species_tag photo: its 'Species|<name>' keyword, as exiftool reads it."""
    rows = _manifest(manifest_rows, "sample_images_species_tag")
    assert len(rows) == 41
    for row in rows:
        data = (camtrap_dir / row["path"]).read_bytes()
        assert species_keywords(data, "Species") == [row["species_or_label"]], row["path"]
        assert species_keywords(data, "Species|") == [row["species_or_label"]]
        assert species_keywords(data, "Location") == []
        assert species_keywords(data, "") == []
    plain = camtrap_dir / "agentmorris__MegaDetector/images/idaho-camera-traps.jpg"
    assert species_keywords(plain.read_bytes(), "Species") == []


def test_keywords_of_a_broken_packet_are_none() -> None:
    assert species_keywords(b"\xff\xd8<x:xmpmeta><rdf:li>Species|Fox</x:xmpmeta>", "Species") == []
    bomb = (
        b'<x:xmpmeta><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r></x:xmpmeta>'
    )
    assert species_keywords(bomb, "Species") == []  # entities are refused, never expanded


def test_categories_of_human_labels() -> None:
    assert category_of("Leopard Cat") == ("animal", "Leopard Cat")
    assert category_of("  EMPTY ") == ("blank", None)
    assert category_of("Human") == ("person", "person")
    assert category_of("car") == ("vehicle", "car")
    assert category_of("UNID") == ("animal", "UNID")


def test_label_csvs_timelapse_and_file_label(tmp_path: Path) -> None:
    tl = tmp_path / "timelapse.csv"
    tl.write_text(
        "File,RelativePath,DateTime,DeleteFlag,Species,Count\n"
        "IMG_1.JPG,StationA\\100RECNX,2009-04-10 05:07:00,false,Leopard Cat,1\n"
        "IMG_2.JPG,StationA\\100RECNX,2009-04-10 05:08:00,false,,0\n"
        "IMG_3.JPG,,2009-04-10 05:09:00,false,Moonrat,1\n",
        encoding="utf-8",
    )
    fmt, rows = read_label_csv(tl)
    assert fmt == "timelapse"
    assert [(r.path, r.label, r.line) for r in rows] == [
        ("StationA/100RECNX/IMG_1.JPG", "Leopard Cat", 2),
        ("IMG_3.JPG", "Moonrat", 4),
    ]
    plain = tmp_path / "labels.csv"
    plain.write_text("filename,common_name\n./S1/a.jpg,red fox\n", encoding="utf-8")
    assert read_label_csv(plain)[0] == "csv"
    assert [(r.path, r.label) for r in read_label_csv(plain)[1]] == [("S1/a.jpg", "red fox")]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,notes\na.jpg,x\n", encoding="utf-8")
    with pytest.raises(LabelCsvError, match="needs a label column"):
        read_label_csv(bad)
    with pytest.raises(LabelCsvError, match="no column 'Genus'"):
        read_label_csv(plain, label_column="Genus")


def _copy(camtrap_dir: Path, rows: list[dict[str, str]], dest: Path, strip: str) -> None:
    for row in rows:
        target = dest / row["path"].split(f"/{strip}/", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(camtrap_dir / row["path"], target)


def _daily(wh: Path) -> dict[str, int]:
    got = query(
        wh,
        "select label, sum(images) from marts.fct_daily_population "
        "where category = 'animal' group by label",
    )
    return {str(label): int(n) for label, n in got}


@pytest.mark.slow
def test_species_folders_and_keywords_count_at_once_and_a_disagreement_is_reported(
    prefect_harness, trapflow_env, camtrap_dir, manifest_rows, tmp_path, monkeypatch
):
    """camtrapR's species directories ('{site}/{species}') and species tags in one source; a
    tagged photo filed under another species' folder is the disagreement."""
    from flows.ingest import ingest

    src = tmp_path / "cards"
    folders = [
        r for r in _manifest(manifest_rows, "sample_images_species_dir") if "StationC" in r["path"]
    ]
    _copy(camtrap_dir, folders, src, "sample_images_species_dir")
    tagged = [
        r for r in _manifest(manifest_rows, "sample_images_species_tag") if "StationA" in r["path"]
    ]
    _copy(camtrap_dir, tagged, src, "sample_images_species_tag")  # StationA/x.JPG: no {species}
    # a Leopard Cat (by its keyword) filed in a Moonrat folder
    odd = next(r for r in tagged if r["species_or_label"] == "Leopard Cat")
    misfiled = src / "StationZ" / "EGY" / "misfiled.JPG"
    misfiled.parent.mkdir(parents=True)
    data = (camtrap_dir / odd["path"]).read_bytes() + b"misfiled"  # its own bytes, same XMP
    misfiled.write_bytes(data)

    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh), layout="{site}/{species}")

    expected = Counter(Path(r["path"]).parent.name for r in folders)
    expected += Counter(r["species_or_label"] for r in tagged)
    got = _daily(wh)
    for label, n in expected.items():
        assert got.get(label) == n, (label, got)
    assert "animal" not in got or got["animal"] <= 1  # only the misfiled photo falls back
    origins = dict(
        query(wh, "select label_origin, count(*) from marts.fct_label_reviews group by 1")
    )
    assert origins == {"folder": len(folders), "xmp": len(tagged)}
    conflicts = query(
        wh, "select file_path, labels, is_resolved_by_review from marts.fct_label_conflicts"
    )
    assert conflicts == [("StationZ/EGY/misfiled.JPG", "folder: EGY; xmp: Leopard Cat", False)]
    from flows.cli import _app as cli_app
    from flows.cli import app

    env = {"COLUMNS": "200"}  # read once, when flows.cli is first imported: the width too
    monkeypatch.setattr(cli_app.console, "_width", 200)
    shown = CliRunner().invoke(app, ["summary", "--warehouse", str(wh)], env=env)
    assert f"photos labelled by people: folder {len(folders)}, xmp {len(tagged)}" in shown.output
    assert "1 whose imported labels disagree" in shown.output
    listed = CliRunner().invoke(app, ["labels", "conflicts", "--warehouse", str(wh)], env=env)
    assert listed.exit_code == 0 and "misfiled.JPG" in listed.output

    before = query(wh, "select count(*) from raw.media_labels")
    shutil.copy2(misfiled, src / "StationZ" / "EGY" / "copy.JPG")  # a copy: one media, same labels
    ingest(source=str(src), warehouse=str(wh), layout="{site}/{species}")
    assert query(wh, "select count(*) from raw.media_labels") == before
    assert _daily(wh) == got


@pytest.mark.slow
def test_a_timelapse_csv_counts_after_import_and_a_reimport_adds_nothing(
    prefect_harness, trapflow_env, camtrap_dir, manifest_rows, tmp_path
):
    from flows.cli import app
    from flows.ingest import ingest

    rows = [
        r for r in _manifest(manifest_rows, "sample_images_species_dir") if "StationA" in r["path"]
    ]
    src = tmp_path / "cards"
    for row in rows:  # flattened: StationA/<file>, no species folder
        target = src / "StationA" / Path(row["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(camtrap_dir / row["path"], target)
    wh = tmp_path / "w.duckdb"
    ingest(source=str(src), warehouse=str(wh))
    assert set(_daily(wh)) <= {"animal"}  # 100x75 thumbnails: few boxes reach the threshold

    export = tmp_path / "timelapse.csv"
    with export.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["File", "RelativePath", "DateTime", "DeleteFlag", "Species"])
        for row in rows:
            species = Path(row["path"]).parent.name
            out.writerow([Path(row["path"]).name, "StationA", "", "false", species])
        out.writerow(["not_here.JPG", "StationA", "", "false", "PBE"])
    env = {"COLUMNS": "200"}
    cmd = ["import", "labels", str(export), "--warehouse", str(wh)]
    res = CliRunner().invoke(app, cmd, env=env)
    assert res.exit_code == 0, res.output
    n = len(rows)
    assert f"{n + 1} labelled rows, {n} photos, {n} new labels" in res.output
    assert "1 rows name files the warehouse does not hold (first: line" in res.output
    assert _daily(wh) == dict(Counter(Path(r["path"]).parent.name for r in rows))

    again = CliRunner().invoke(app, cmd, env=env)
    assert again.exit_code == 0, again.output
    assert f"{len(rows)} photos, 0 new labels" in again.output
    assert query(wh, "select count(*) from raw.media_labels") == [(len(rows),)]

    bad = tmp_path / "bad.csv"
    bad.write_text("file,notes\nx.JPG,y\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["import", "labels", str(bad), "--warehouse", str(wh)], env=env)
    assert res.exit_code == 2
    assert "needs a label column" in res.output and "Traceback" not in res.output


def test_every_model_reads_human_labels_through_one_owner() -> None:
    """Dashboard reviews and imported labels reach the marts only through int_human_labels."""
    root = Path(__file__).resolve().parents[3] / "dbt"
    readers: dict[str, Any] = {}
    for sql in [*root.glob("models/**/*.sql"), *root.glob("macros/*.sql")]:
        text = sql.read_text(encoding="utf-8")
        for ref in ("ref('stg_review__labels')", "ref('stg_pipeline__media_labels')"):
            if ref in text:
                readers.setdefault(ref, set()).add(sql.stem)
    assert readers == {
        "ref('stg_review__labels')": {"int_human_labels"},
        "ref('stg_pipeline__media_labels')": {"int_human_labels", "int_media_labels_conflicting"},
    }
