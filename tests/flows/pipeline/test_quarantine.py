"""One enum of quarantine reasons: every code the code uses is a member, with a remedy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flows.pipeline.quarantine import QuarantineReason, reason_of
from flows.store import rows
from models_ml import ImageRejected
from models_ml.video import VideoError

ROOT = Path(__file__).resolve().parents[3]
#: calls whose ``reason`` argument must be a QuarantineReason, never a bare string
_TAKES_REASON = {"quarantine_file": 2, "quarantine_row": None, "QuarantineRow": None}


def test_every_library_code_is_a_member() -> None:
    members = {str(r) for r in QuarantineReason}
    assert members >= ImageRejected.REASONS
    assert members >= VideoError.REASONS


def test_every_reason_has_a_remedy() -> None:
    for reason in QuarantineReason:
        assert len(reason.remedy) > 10, reason
        assert not reason.remedy.endswith("."), reason  # a clause: message() adds it after ';'
        assert reason.message("the problem") == f"the problem; {reason.remedy}"


def _library_codes(path: Path) -> set[str]:
    """The string codes given to ImageRejected(...) / VideoError(...) in a module."""
    codes = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if name not in ("ImageRejected", "VideoError"):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            codes.add(first.value)
        elif isinstance(first, ast.Name):  # reason = "a" if ... else "b"
            for other in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(other, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == first.id for t in other.targets
                ):
                    for c in ast.walk(other.value):
                        if isinstance(c, ast.Constant) and isinstance(c.value, str):
                            codes.add(c.value)
    return codes


def test_every_code_raised_by_the_library_is_a_member() -> None:
    members = {str(r) for r in QuarantineReason}
    codes = _library_codes(ROOT / "models_ml" / "_imageops.py")
    codes |= _library_codes(ROOT / "models_ml" / "video.py")
    assert {"not_an_image", "truncated", "corrupt_video", "undecodable_video"} <= codes
    assert codes <= members, codes - members


def test_no_bare_string_reason_in_flows() -> None:
    """Every quarantine row in flows/ is made from a QuarantineReason member."""
    offenders = []
    for path in sorted((ROOT / "flows").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):  # a raw.quarantine row written by hand
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if {"quarantine_id", "reason"} <= keys:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} builds a row")
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name not in _TAKES_REASON:
                continue
            args = [kw.value for kw in node.keywords if kw.arg == "reason"]
            position = _TAKES_REASON[name]
            if position is not None and len(node.args) > position:
                args.append(node.args[position])
            for arg in args:
                if isinstance(arg, ast.Constant):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {arg.value!r}")
    assert offenders == []


def test_a_row_takes_a_member_not_a_string() -> None:
    row = rows.quarantine_row(
        source_uri="/card", file_path="a.jpg", reason=QuarantineReason.TRUNCATED,
        error=QuarantineReason.TRUNCATED.message("the image data ends early"), run_id="r",
    )  # fmt: skip
    assert (row.reason, row.action) == ("truncated", "skipped")
    assert (
        row.error
        == "the image data ends early; the copy is incomplete, copy it from the card again"
    )
    with pytest.raises(TypeError, match="QuarantineReason"):
        rows.quarantine_row(
            source_uri="/card", file_path="a.jpg", reason="truncated",  # type: ignore[arg-type]
            error="x", run_id="r",
        )  # fmt: skip


def test_reason_of_a_library_exception() -> None:
    assert reason_of(ImageRejected("truncated", "x"), QuarantineReason.CORRUPT) == "truncated"
    assert reason_of(VideoError("empty_video", "x"), QuarantineReason.CORRUPT_VIDEO) == (
        QuarantineReason.EMPTY_VIDEO
    )
    assert reason_of(OSError("x"), QuarantineReason.UNREADABLE) is QuarantineReason.UNREADABLE
