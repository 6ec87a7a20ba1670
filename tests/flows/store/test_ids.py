"""Every stable id keeps its recipe: the values below were computed with the code before the
ids moved to flows/store/ids.py (a changed recipe would duplicate every stored row)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from flows.store import ids

MID = "2a5cad7b05cde589499533909274f5ece863e37a57e84fbad28c61a70f0c20ef"  # sha256(b"trapflow")
DID = "0f" * 16
ROOT = Path(__file__).resolve().parents[3]


def test_media_id_is_the_sha256_of_the_bytes() -> None:
    assert ids.media_id(b"trapflow") == MID
    assert ids.media_id_of_chunks([b"trap", b"", b"flow"]) == (MID, 8)


def test_detection_ids() -> None:
    assert ids.detection_id(MID, "mdlite_yolox_tiny@1.0", 0) == "8de5980c5cd58a7bd049fd6fc672a7be"
    assert ids.detection_id(MID, "yolox_nano_coco@0.1.1", 1) == "0a17acc402eb3f39a8e0cd9a69fade46"
    assert (
        ids.detection_id(MID, "mdlite_yolox_tiny@1.0", 0, frame_number=30)
        == "46a4a10fd9f5e1e37b75728d90eff790"
    )
    assert (
        ids.detection_id(MID, "yolox_nano_coco@0.1.1", 1, frame_number=30)
        == "ff0ef46b1a921eb227cb36b6af7b192a"
    )
    # imported MegaDetector JSON: the same recipe under the imported model's name@version
    assert ids.detection_id(MID, "md_v5a@5a", 0) == "22fd26d2b67c3c71273e0a2cea6cacfd"


def test_classification_ids() -> None:
    assert ids.classification_id(DID, "species_head@2", 1) == "98d0719839e09f4292a51e107eeb211d"
    assert (
        ids.classification_id(DID, "imported_classifier", 1) == "9dcb87cc4655ea8d6403244fe61e07fc"
    )


def test_frame_label_ids() -> None:
    assert ids.frame_label_id(MID, "behaviour_head@1", 30) == "7c3860b915d20af24482e2c10b3d53eb"


def test_media_label_ids() -> None:
    assert ids.media_label_id(MID, "folder", "PBE") == "b6208703a091bafee3fa4e6d6f5e2eba"
    assert ids.media_label_id(MID, "xmp", None) == "3fe99c0b9decbe268fbf606392972bb2"
    assert ids.media_label_id(MID, "xmp", "PBE") != ids.media_label_id(MID, "folder", "PBE")


def test_quarantine_ids() -> None:
    path = "S1/C1/IMG_0001.JPG"
    assert ids.quarantine_id("/data/cards", path, MID, "truncated") == (
        "390454ae75f54042be6b95b2af6d4fe2"
    )
    assert ids.quarantine_id("/data/cards", path, None, "outside_source") == (
        "3d57639d05bcccddba946a2b695660dc"
    )


def test_alert_ids() -> None:
    base = ids.alert_id("people", "S1", MID)
    assert base == "f838e0d845f6828c2e714d46303c0418"
    assert ids.trust_row_id(base, "public") == "9e9aa7bbacc522838e1c2359c7e6208a"
    assert ids.summary_id("people", "abc", "run1") == "4d9632aeb401e19a2028fe975e007cf9"
    day = datetime.date(2024, 5, 1)
    assert ids.anomaly_id("spike", "S1", "deer", day) == "c1c952b264ba6c65f7a22f85d51c7dd6"
    assert ids.anomaly_id("spike", None, "deer", day) == "e09da3d4b738cf371eef96ece610fdbf"
    assert ids.channel_key("json://localhost/x") == "fafc3545b7aa8685"


def test_export_ids() -> None:
    assert ids.camtrap_observation_id(MID, "animal", "deer") == "ae09befd5bce7b88"
    assert ids.camtrap_observation_id(MID, "blank") == "5dda6d3704696b6c"
    assert ids.camtrap_package_id("my-survey") == "1baadb83-add9-512e-a056-25ac827e1744"


def test_camtrap_import_ids() -> None:
    """An imported Camtrap DP package's media and run (tdwg/camtrap-dp's example package)."""
    package = "7cca70f5-ef8c-4f86-85fb-8f070937d7ab"
    assert (
        ids.camtrap_media_id(package, "07840dcc")
        == "fcd0b85a25723413fcd13ee397541a0fbe1d6c8ea8ed615b3055906229385c51"
    )
    assert ids.camtrap_import_run_id(package) == "camtrapdp-1e98d849a98e"


def test_random_ids_have_their_shapes() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", ids.new_run_id())
    assert re.fullmatch(r"import-[0-9a-f]{12}", ids.import_run_id())
    assert re.fullmatch(r"run1-[0-9a-f]{12}", ids.new_batch_id("run1"))
    assert re.fullmatch(r"[0-9a-f-]{36}", ids.new_review_label_id())
    assert ids.new_run_id() != ids.new_run_id()


def test_no_other_module_makes_stored_ids() -> None:
    """Hashes of row keys are made only in flows/store/ids.py (SHA-256 elsewhere is a checksum
    of content, not an id: sign-in, exported images; uuid4 names temporary files)."""
    offenders = []
    for path in sorted([*ROOT.glob("flows/**/*.py"), *ROOT.glob("dashboard/**/*.py")]):
        if path.name == "ids.py" and path.parent.name == "store":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"hashlib\.md5|uuid\.uuid5\(|\bmd5\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
