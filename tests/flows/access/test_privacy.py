"""Location and people privacy outside the dashboard: image exports and alert channels.

Exports run on the session's real ingest of the samples (``sample_run``); alerts go to real
JSON webhooks on loopback, one per channel.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import piexif
import pytest
from PIL import Image
from pydantic import SecretStr
from typer.testing import CliRunner

from flows.access.privacy import generalise
from flows.alerts import engine as _alerts
from flows.formats import images as _image_export
from flows.settings import AlertRule, Settings
from flows.store import warehouse as _warehouse
from flows.store.warehouse import open_file
from tests._servers import json_sink

# a person photo whose EXIF has GPS (the camera's placeholder) and DateTimeOriginal
PERSON_GPS = "conservationtechlab__animl-py/examples/Southwest/B012_2021-05-27_human.jpg"
GPS_PHOTO = "ianare__exif-samples/jpg/gps/DSCN0010.jpg"  # real GPS, no people
GPS_IFD = piexif.ImageIFD.GPSTag
DATETIME_ORIGINAL = piexif.ExifIFD.DateTimeOriginal


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(out: Path) -> dict[str, dict[str, str]]:
    with (out / _image_export.MANIFEST).open(newline="", encoding="utf-8") as fh:
        return {row["source_path"]: row for row in csv.DictReader(fh)}


def _exif(data: bytes) -> dict[str, Any]:
    exif: dict[str, Any] = piexif.load(data)
    return exif


def _detail(img: Image.Image, box: tuple[float, float, float, float]) -> float:
    """Fine detail inside the middle of a normalised box: the mean absolute difference of
    neighbouring grey values (a blur flattens it; the outline drawn on the box is left out)."""
    x, y, w, h = box
    grey = np.asarray(img.convert("L"), dtype=float)
    height, width = grey.shape
    inner = grey[int((y + 0.15 * h) * height) : int((y + 0.85 * h) * height),
                 int((x + 0.15 * w) * width) : int((x + 0.85 * w) * width)]  # fmt: skip
    return float(np.abs(np.diff(inner, axis=0)).mean() + np.abs(np.diff(inner, axis=1)).mean())


def _person_boxes(warehouse: Path, rel: str) -> list[tuple[float, float, float, float]]:
    with open_file(warehouse, read_only=True) as con:
        rows = con.execute(
            "select d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h from raw.detections d "
            "join raw.media m using (media_id) where m.file_path = ? and d.category = 'person' "
            "order by d.bbox_w * d.bbox_h desc",
            [rel],
        ).fetchall()
    return [tuple(float(v) for v in r) for r in rows]  # type: ignore[misc]


# --------------------------------------------------------------------------- image export


@pytest.fixture(scope="module")
def default_export(
    sample_run: dict[str, Any], camtrap_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, _image_export.ImageExportResult, dict[str, str]]:
    """Two sites exported with the defaults (people blurred, GPS stripped); the originals'
    SHA-256 taken before."""
    before = {rel: _sha((camtrap_dir / rel).read_bytes()) for rel in (PERSON_GPS, GPS_PHOTO)}
    out = tmp_path_factory.mktemp("export-default")
    result = _image_export.export_images(sample_run["warehouse"], out, sites=["Southwest", "gps"])
    return out, result, before


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 2 s
def test_exported_person_photo_is_blurred_without_gps_and_keeps_its_time(
    default_export: tuple[Path, _image_export.ImageExportResult, dict[str, str]],
    sample_run: dict[str, Any],
    camtrap_dir: Path,
) -> None:
    out, _result, before = default_export
    rows = _manifest(out)
    person = rows[PERSON_GPS]
    assert person["action"] == "blurred" and int(person["people_blurred"]) >= 1, person
    assert person["gps"] == "stripped"
    original = (camtrap_dir / PERSON_GPS).read_bytes()
    exported = (out / person["exported_path"]).read_bytes()
    # EXIF: no GPS IFD, DateTimeOriginal and the camera as they were, no unblurred preview
    assert _exif(original)["GPS"] and not _exif(exported)["GPS"]
    tags = Image.open(io.BytesIO(exported)).getexif()
    assert GPS_IFD not in tags and not tags.get_ifd(GPS_IFD)
    source_tags = Image.open(io.BytesIO(original)).getexif()
    assert (
        tags.get_ifd(piexif.ImageIFD.ExifTag)[DATETIME_ORIGINAL]
        == source_tags.get_ifd(piexif.ImageIFD.ExifTag)[DATETIME_ORIGINAL]
        == "2021:05:27 12:47:59"
    )
    assert (tags[271], tags[272]) == (source_tags[271], source_tags[272])  # make, model
    assert _exif(exported)["thumbnail"] is None
    # the person's box: detail gone in the export, the rest of the picture as it was
    box = _person_boxes(sample_run["warehouse"], PERSON_GPS)[0]
    src_img, out_img = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(exported))
    assert out_img.size == src_img.size
    assert _detail(out_img, box) < 0.5 * _detail(src_img, box)
    corner = (0.0, 0.0, 0.1, 0.1) if box[0] > 0.15 or box[1] > 0.15 else (0.85, 0.85, 0.1, 0.1)
    assert abs(_detail(out_img, corner) - _detail(src_img, corner)) < 3
    # evidence chain: the original is untouched, the manifest holds both hashes
    assert _sha((camtrap_dir / PERSON_GPS).read_bytes()) == before[PERSON_GPS]
    assert person["source_sha256"] == person["media_id"] == before[PERSON_GPS]
    assert person["exported_sha256"] == _sha(exported) != person["source_sha256"]


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 2 s
def test_gps_is_cut_from_the_header_alone_and_leaves_no_trace(
    default_export: tuple[Path, _image_export.ImageExportResult, dict[str, str]],
    camtrap_dir: Path,
) -> None:
    out, result, before = default_export
    row = _manifest(out)[GPS_PHOTO]
    assert (row["action"], row["gps"], row["people_blurred"]) == ("gps_stripped", "stripped", "0")
    original = (camtrap_dir / GPS_PHOTO).read_bytes()
    exported = (out / row["exported_path"]).read_bytes()
    source, copy = _exif(original), _exif(exported)
    assert source["GPS"] and not copy["GPS"]
    # the coordinates' bytes are zeroed, not just unlinked
    lat = source["GPS"][piexif.GPSIFD.GPSLatitude]
    for endian in ("<", ">"):
        assert struct.pack(f"{endian}6L", *(v for pair in lat for v in pair)) not in exported
    # everything else of the EXIF is as the camera wrote it; the image data is the same bytes
    assert copy["Exif"][DATETIME_ORIGINAL] == source["Exif"][DATETIME_ORIGINAL]
    assert copy["0th"] == {k: v for k, v in source["0th"].items() if k != GPS_IFD}
    assert len(exported) == len(original) and exported[-50_000:] == original[-50_000:]
    assert _sha(original) == before[GPS_PHOTO] == row["source_sha256"]
    assert row["exported_sha256"] == _sha(exported)
    assert result.exported == len(_manifest(out)) and result.gps_stripped >= 2
    assert not any(path.startswith(("..", "/")) for path, _why in result.skipped)


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 2 s
def test_keep_gps_and_no_blur_copy_byte_for_byte_except_at_sensitive_sites(
    sample_run: dict[str, Any], camtrap_dir: Path, tmp_path: Path
) -> None:
    from flows.cli import app

    warehouse = str(sample_run["warehouse"])
    out = tmp_path / "raw-copies"
    result = CliRunner().invoke(
        app,
        ["export", "images", "--out", str(out), "--warehouse", warehouse, "--site", "Southwest",
         "--site", "gps", "--keep-gps", "--no-blur"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _manifest(out)
    assert {PERSON_GPS, GPS_PHOTO} <= set(rows)
    for rel in (PERSON_GPS, GPS_PHOTO):
        exported = (out / rows[rel]["exported_path"]).read_bytes()
        assert rows[rel]["action"] == "copied" and rows[rel]["gps"] == "kept"
        assert (
            _sha(exported) == rows[rel]["source_sha256"] == _sha((camtrap_dir / rel).read_bytes())
        )
        assert _exif(exported)["GPS"]
    # --keep-gps does not keep it where a sensitive species was recorded ('animal' here, so
    # that the samples have one): those copies lose their GPS all the same
    guarded = _image_export.export_images(
        sample_run["warehouse"], tmp_path / "guarded", sites=["Southwest"], blur=False,
        strip_gps=False, sensitive=("animal",), thresholds={"animal": 0.25},
    )  # fmt: skip
    row = _manifest(tmp_path / "guarded")[PERSON_GPS]
    assert row["gps"] == "stripped (sensitive site)" and guarded.sensitive_gps_stripped >= 1
    assert not _exif((tmp_path / "guarded" / row["exported_path"]).read_bytes())["GPS"]


@pytest.mark.slow  # the session's sample ingest; the test itself takes < 2 s
def test_mart_csvs_generalise_coordinates_at_sensitive_sites(
    sample_run: dict[str, Any], tmp_path: Path
) -> None:
    from flows.formats import exports as _exports

    warehouse = sample_run["warehouse"]
    with open_file(warehouse, read_only=True) as con:
        lat, lon = con.execute(
            "select latitude, longitude from marts.dim_media where file_path = ?", [GPS_PHOTO]
        ).fetchone() or (None, None)
    assert lat is not None and lon is not None
    out = _exports.export_mart_csvs(
        warehouse, tmp_path / "csv", sensitive=("animal",), thresholds={"animal": 0.25}
    )  # 'animal' as the sensitive taxon, so that the samples' sites have one
    assert {p.name for p in out} >= {"dim_media.csv", "dim_deployments.csv"}
    with (tmp_path / "csv" / "dim_media.csv").open(newline="", encoding="utf-8") as fh:
        media = {row["file_path"]: row for row in csv.DictReader(fh)}
    person = media[PERSON_GPS]  # an animal was seen at its site (Southwest)
    glat, glon, _r = generalise(1.02249999999369, 1.02249999999369, 10.0)
    assert (float(person["latitude"]), float(person["longitude"])) == (glat, glon)
    _exports.export_mart_csvs(warehouse, tmp_path / "plain")  # nothing sensitive: exact
    with (tmp_path / "plain" / "dim_media.csv").open(newline="", encoding="utf-8") as fh:
        exact = {row["file_path"]: row for row in csv.DictReader(fh)}
    assert len(exact) == len(media)
    assert float(exact[PERSON_GPS]["latitude"]) != glat
    assert (float(exact[GPS_PHOTO]["latitude"]), float(exact[GPS_PHOTO]["longitude"])) == (lat, lon)


# --------------------------------------------------------------------------- alerts

LAT, LON = -1.234567, 34.567891  # the person photo's GPS at site K1, where a rhino was seen
DEP_LAT, DEP_LON = -2.5, 35.5  # the deployment of site K2 (no sensitive species there)
T0 = datetime(2024, 1, 21, 15, 19, 15)
BOX = (0.3, 0.3, 0.3, 0.4)


def _seed(settings: Settings, camtrap_dir: Path) -> None:
    rows = [  # media_id, site, run, lat, lon, (category, label, confidence)
        ("rhino1", "K1", "run0", None, None, ("animal", "black rhinoceros", 0.9)),
        ("person1", "K1", "run1", LAT, LON, ("person", "person", 0.8)),
        ("person2", "K2", "run1", None, None, ("person", "person", 0.8)),
    ]
    with _warehouse.connect(settings.warehouse_path) as con:
        _warehouse.ensure_schema(con)
        for media_id, site, run, lat, lon, (category, label, conf) in rows:
            con.execute(
                "insert into raw.media (media_id, source_uri, file_path, file_name, "
                "file_extension, file_size, media_type, site_id, camera_id, captured_at, "
                "timestamp_source, latitude, longitude, run_id, ingested_at) values "
                "(?, ?, ?, 'b012.jpg', 'jpg', 1, 'image', ?, 'C1', ?, 'exif', ?, ?, ?, now())",
                [media_id, str(camtrap_dir), PERSON_GPS, site, T0, lat, lon, run],
            )
            con.execute(
                "insert into raw.detections (detection_id, media_id, model_name, "
                "model_version, category, category_id, label, confidence, bbox_x, bbox_y, "
                "bbox_w, bbox_h, frame_number, run_id, detected_at) "
                "values (?, ?, 'yolox_nano_coco', '1', ?, 2, ?, ?, ?, ?, ?, ?, null, ?, now())",
                [f"{media_id}-0", media_id, category, label, conf, *BOX, run],
            )
        con.execute(
            "insert into raw.deployments (deployment_id, site_id, camera_id, deployment_start, "
            "deployment_end, latitude, longitude, source_file, source_line, loaded_at) values "
            "('K2/C1', 'K2', 'C1', ?, ?, ?, ?, 'deployments.csv', 2, now())",
            [datetime(2024, 1, 1), datetime(2024, 2, 1), DEP_LAT, DEP_LON],
        )


def test_alerts_carry_exact_places_to_rangers_and_generalised_ones_to_others(
    tmp_path: Path, camtrap_dir: Path
) -> None:
    with json_sink() as rangers, json_sink() as biologists:
        settings = Settings(
            warehouse=tmp_path / "w.duckdb",
            alert_channels={
                "Rangers": SecretStr(f"json://127.0.0.1:{rangers.port}/r"),
                "biologists": SecretStr(f"json://127.0.0.1:{biologists.port}/b"),
            },
            alert_rules=[AlertRule(name="human", channels=["rangers", "biologists"])],
        )
        _seed(settings, camtrap_dir)
        queued = _alerts.queue_alerts(settings, "run1")
        assert (queued.alerts, queued.queued) == (4, 4)  # 2 images x 2 trust levels
        assert _alerts.queue_alerts(settings, "run1").queued == 0
        delivered = _alerts.deliver_alerts(settings)
        assert (delivered.sent, delivered.messages) == (4, 4)
        to_rangers = {m["title"]: m for m in rangers.wait_for(2)}
        to_others = {m["title"]: m for m in biologists.wait_for(2)}
    k1, k2 = "Person at site K1, camera C1", "Person at site K2, camera C1"
    assert set(to_rangers) == set(to_others) == {k1, k2}
    glat, glon, _radius = generalise(LAT, LON, settings.sensitive_grid_km)
    # rangers: exact, from the image's GPS and from deployments.csv
    assert f"{LAT:.6f}, {LON:.6f} (image GPS)" in to_rangers[k1]["message"]
    assert f"{DEP_LAT:.6f}, {DEP_LON:.6f} (deployment)" in to_rangers[k2]["message"]
    # others: a person at K1, where a rhino was recorded, gets the grid cell's centre only
    other_k1 = to_others[k1]["message"]
    assert f"{glat:.5f}, {glon:.5f} (approximate: 10 km grid cell" in other_k1
    assert f"{LAT:.3f}" not in other_k1 and f"{LON:.3f}" not in other_k1
    assert "rhino" not in other_k1.lower()  # the message never says why
    assert f"{DEP_LAT:.6f}, {DEP_LON:.6f} (deployment)" in to_others[k2]["message"]
    # thumbnails: fresh JPEGs without EXIF; others' have the person blurred, rangers' not
    thumbs = {
        who: Image.open(io.BytesIO(base64.b64decode(m[k1]["attachments"][0]["base64"])))
        for who, m in (("rangers", to_rangers), ("others", to_others))
    }
    source_gps = _exif((camtrap_dir / PERSON_GPS).read_bytes())["GPS"]
    assert source_gps
    for thumb in thumbs.values():
        assert thumb.format == "JPEG" and not thumb.getexif() and GPS_IFD not in thumb.getexif()
    assert _detail(thumbs["others"], BOX) < 0.5 * _detail(thumbs["rangers"], BOX)
    # the box is drawn on both (red outline on the left edge of the box)
    for thumb in thumbs.values():
        px = thumb.convert("RGB").getpixel((int(BOX[0] * thumb.width) + 1, int(0.5 * thumb.height)))
        assert px[0] > 180 and px[1] < 110, px  # type: ignore[index]
    with open_file(settings.warehouse_path, read_only=True) as con:
        channels = sorted(
            r[0] for r in con.execute("select channels from alerts.outbox").fetchall()
        )
    assert channels == ["biologists", "biologists", "rangers", "rangers"]


def test_clip_thumbnails_for_other_channels_blur_the_frame_s_people(
    tmp_path: Path, camtrap_dir: Path
) -> None:
    from flows.pipeline import video as _video

    clip = "drivendataorg__zamba/tests/assets/densepose_tests/chimp.mp4"
    warehouse = tmp_path / "w.duckdb"
    with _warehouse.connect(warehouse) as con:
        _warehouse.ensure_schema(con)
        con.execute(
            "insert into raw.detections (detection_id, media_id, model_name, model_version, "
            "category, category_id, label, confidence, bbox_x, bbox_y, bbox_w, bbox_h, "
            "frame_number, run_id, detected_at) values "
            "('d1', 'clip', 'yolox_nano_coco', '1', 'person', 2, 'person', 0.9, ?, ?, ?, ?, 0, "
            "'r', now())",
            list(BOX),
        )
    seen = [("yolox_nano_coco", "person", 0.9)]
    shots = {
        blur: _video.clip_thumbnail(warehouse, str(camtrap_dir), clip, "clip", seen, 640, blur)
        for blur in (False, True)
    }
    sharp, blurred = (Image.open(io.BytesIO(shots[b] or b"")) for b in (False, True))
    assert _detail(blurred, BOX) < 0.5 * _detail(sharp, BOX)
