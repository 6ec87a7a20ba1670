"""Edge runs on real sample photos: a folder and an S3 target, a network lost mid-upload, a
full disk."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.edge.keys import MANIFEST_FORMAT
from flows.edge.run import run_edge
from flows.edge.targets import FolderTarget, FsspecTarget, Target


class Flaky:
    """A target whose network goes after ``ok`` puts: the next put reaches the store but its
    answer is lost (the worst case for duplicates), later ones fail outright."""

    def __init__(self, inner: Target, ok: int) -> None:
        self.inner, self.ok, self.uri = inner, ok, inner.uri
        self.puts: list[str] = []

    def size(self, key: str) -> int | None:
        if self.ok < 0:
            raise ConnectionError("network is unreachable")
        return self.inner.size(key)

    def put(self, local: Path, key: str) -> None:
        if self.ok < 0:
            raise ConnectionError("network is unreachable")
        self.puts.append(key)
        self.inner.put(local, key)
        self.ok -= 1
        if self.ok < 0:
            raise ConnectionError("connection reset by peer")


def _photos(state: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(state / "queue.sqlite")
    con.row_factory = sqlite3.Row
    return [dict(r) for r in con.execute("select * from photos order by path")]


def _manifest_rows(files: list[bytes]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for body in files:
        header, *photos = [json.loads(line) for line in body.decode().splitlines()]
        assert header["format"] == MANIFEST_FORMAT
        assert header["detection_thresholds"] == {"animal": 0.25, "person": 0.5, "vehicle": 0.5}
        rows += photos
    return rows


def _folder_objects(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }


def test_folder_target_uploads_non_blanks_people_first(
    edge_settings: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "up").mkdir()
    settings = edge_settings()
    report = run_edge(settings)
    photos = _photos(settings.state_dir)
    assert report.scanned == len(photos) == 11 and report.pending == 0
    up = {p["path"] for p in photos if p["decision"] == "upload"}
    kept = {p["path"] for p in photos if p["decision"] == "kept"}
    assert "gallery/S1_J08_R1_PICT0119.JPG" in up and "misc/error_img.JPG" in up
    assert {"StationA/IMG0001.JPG", "misc/B013_IMG_0005_empty.jpeg"} <= kept
    objects = _folder_objects(tmp_path / "up")
    manifests = [k for k in objects if k.startswith("_manifests/")]
    assert len(manifests) == 1
    assert sorted(k for k in objects if k not in manifests) == sorted(
        p["key"] for p in photos if p["decision"] == "upload"
    )
    rows = _manifest_rows([(tmp_path / "up" / m).read_bytes() for m in manifests])
    assert sorted(r["path"] for r in rows) == sorted(up | kept)  # every photo, blanks too
    assert all(set(r["scores"]) == {"animal", "person", "vehicle"} for r in rows)
    # people first, the manifest last
    con = sqlite3.connect(settings.state_dir / "queue.sqlite")
    order = [k for (k,) in con.execute("select kind from uploads order by done_at, seq")]
    assert order[0] == "person" and order[-1] == "manifest"
    # a second run finds nothing new and uploads nothing
    again = run_edge(settings)
    assert (again.scanned, again.uploaded) == (0, 0)


def _resume(settings: Any, target: Target, objects: Callable[[], dict[str, int]]) -> None:
    """Lose the network after two puts, then restore it: every photo to upload is at the
    target exactly once, whole, and the queue is empty."""
    flaky = Flaky(target, ok=2)
    first = run_edge(settings, target=flaky)
    assert first.pending > 0 and first.errors and "offline" in first.errors[-1]
    assert len(flaky.puts) == 3  # two acknowledged, one landed unacknowledged
    second = run_edge(settings, target=target)
    assert second.pending == 0 and second.scanned == 0
    photos = _photos(settings.state_dir)
    keys = sorted(p["key"] for p in photos if p["decision"] == "upload")
    held = objects()
    assert sorted(k for k in held if not k.startswith("_manifests/")) == keys
    assert len([k for k in held if k.startswith("_manifests/")]) == 1
    sizes = {p["key"]: p["size"] for p in photos if p["key"]}
    assert all(held[k] == sizes[k] for k in keys)  # whole objects
    # the unacknowledged put was not sent again: one put per key over both runs
    assert second.uploaded == len(keys) + 1 - 2  # the two acknowledged ones were done


def test_network_lost_mid_upload_resumes_without_loss_or_duplicates(
    edge_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = edge_settings()
    root = tmp_path / "up"
    root.mkdir()
    _resume(settings, FolderTarget(root), lambda: _folder_objects(root))
    assert not [p for p in root.rglob(".*.part")]


def test_s3_target_resumes_after_the_network_came_back(
    edge_settings: Callable[..., Any],
) -> None:
    from tests._servers import moto_s3

    with moto_s3():
        import s3fs

        fs = s3fs.S3FileSystem()
        bucket = f"edge-{uuid.uuid4().hex[:12]}"  # moto's buckets outlive its servers
        fs.mkdir(bucket)
        settings = edge_settings(upload=f"s3://{bucket}/traps")
        target = FsspecTarget(settings.upload)

        def objects() -> dict[str, int]:
            fs.invalidate_cache()
            found = fs.find(f"{bucket}/traps", detail=True)
            return {k.removeprefix(f"{bucket}/traps/"): int(v["size"]) for k, v in found.items()}

        _resume(settings, target, objects)


def test_full_disk_takes_no_new_work_and_keeps_the_queue(
    edge_settings: Callable[..., Any], tmp_path: Path, card: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAPFLOW_EDGE_RETRY_S", "0")
    root = tmp_path / "up"
    root.mkdir()
    settings = edge_settings()
    offline = run_edge(settings, target=Flaky(FolderTarget(root), ok=-1))
    queued = offline.pending
    assert queued > 0
    (card / "misc" / "new.jpg").write_bytes(
        (card / "gallery" / "S1_F10_R1_PICT0104.JPG").read_bytes()
    )
    full = edge_settings(min_free_mb=1e15)
    report = run_edge(full, target=Flaky(FolderTarget(root), ok=-1))
    assert report.disk_full is not None and "\n" not in report.disk_full
    assert (
        report.disk_full.startswith("disk full:")
        and f"the {queued} queued uploads" in report.disk_full
    )
    assert report.scanned == 0 and report.pending == queued  # nothing new, nothing lost
    # the CLI says it in one line, exit 2
    import typer
    from typer.testing import CliRunner

    from flows.edge.cli import edge

    app = typer.Typer()
    app.command()(edge)
    result = CliRunner().invoke(
        app,
        ["--card", str(card), "--upload", str(tmp_path / "nowhere"), "--state-dir",
         str(full.state_dir), "--model-dir", str(full.model_dir), "--min-free-mb", "1e15",
         "--once"],
    )  # fmt: skip
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk full" in errors[0]
    # space freed, network back: the new photo goes in and everything goes up
    back = run_edge(settings, target=FolderTarget(root))
    assert back.scanned == 1 and back.pending == 0
    assert back.uploaded == queued + 1  # and its manifest: the new photo is a copy, sent once


def test_import_edge_manifests_without_manifests_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(
        app, ["import", "edge-manifests", str(tmp_path), "-w", str(tmp_path / "w.duckdb")]
    )
    assert result.exit_code == 2
    assert "no _manifests/ folder under" in result.output
    assert "Traceback" not in result.output


def test_s3_server_gone_mid_upload_then_back(
    edge_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 server itself goes away after two puts (connections refused), and comes back on
    the same port with what it held: the next run uploads the rest, each photo once."""
    import s3fs
    from moto.server import ThreadedMotoServer

    from tests._servers import free_port

    port = free_port()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "trapflow-test",
        "AWS_SECRET_ACCESS_KEY": "moto-test-key", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(
        skip_instance_cache=True,
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 1},
    )
    fs.retries = 1  # fail fast once the server is gone (the edge's own tries remain)
    try:
        bucket = f"edge-{uuid.uuid4().hex[:12]}"  # moto's buckets outlive its servers
        fs.mkdir(bucket)
        settings = edge_settings(upload=f"s3://{bucket}/traps")
        target = FsspecTarget(settings.upload, fs=fs)

        class PullsThePlug:
            uri = target.uri
            puts = 0

            def size(self, key: str) -> int | None:
                return target.size(key)

            def put(self, local: Path, key: str) -> None:
                target.put(local, key)
                self.puts += 1
                if self.puts == 2:
                    server.stop()

        first = run_edge(settings, target=PullsThePlug())
        assert first.pending > 0 and "offline" in first.errors[-1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        second = run_edge(settings, target=target)
        assert second.pending == 0 and second.uploaded == first.pending
        fs.invalidate_cache()
        held = sorted(k.removeprefix(f"{bucket}/traps/") for k in fs.find(f"{bucket}/traps"))
        photos = _photos(settings.state_dir)
        keys = sorted({p["key"] for p in photos if p["key"]})
        assert [k for k in held if not k.startswith("_manifests/")] == keys
        assert len(held) == len(keys) + 1  # and one manifest
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
