"""Model pulls: copy or download, verify SHA-256, never re-fetch, resume over HTTP."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from models_ml import _fetch
from models_ml.registry import (
    ModelFetchError,
    ModelNotFoundError,
    ModelSpec,
    ModelVerificationError,
    default_mirror,
    load_manifest,
    pull,
    resolve,
    sha256_file,
    verify,
)

SMALL = "yolox_nano_coco"  # 3.6 MB model + 3 extra files


@pytest.fixture(scope="module")
def specs() -> dict[str, ModelSpec]:
    return load_manifest()


@pytest.fixture
def small(specs: dict[str, ModelSpec]) -> ModelSpec:
    return specs[SMALL]


@pytest.fixture
def small_mirror(tmp_path: Path, model_mirror: Path) -> Path:
    """A writable copy of the small model's mirror folder (to corrupt at will)."""
    root = tmp_path / "mirror"
    shutil.copytree(model_mirror / SMALL, root / SMALL)
    for p in (root / SMALL).iterdir():
        p.chmod(0o644)
    return root


def _flip_byte(path: Path, at: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.part"))


# --- folder mirror ----------------------------------------------------------------------


def test_pull_every_model_from_the_folder_mirror_then_never_again(
    specs: dict[str, ModelSpec], model_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "models"
    for spec in specs.values():
        path = pull(spec, dest, str(model_mirror))
        assert path == dest / spec.file and path.stat().st_size == spec.size
        for extra in spec.extra_files:
            assert (dest / extra.file).is_file()
        result = verify(spec, dest)
        assert result.ok and result.name == spec.name, result.detail
        assert resolve(spec, dest) == path
    assert _leftovers(dest) == []

    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}

    def no_fetch(*args: object, **kwargs: object) -> str:
        raise AssertionError("a verified file was fetched again")

    monkeypatch.setattr(_fetch, "_fetch", no_fetch)
    for spec in specs.values():
        pull(spec, dest, str(model_mirror))
    after = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}
    assert after == before


def test_sidecar_spares_a_new_process_the_hashing(
    small: ModelSpec, model_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pull(small, tmp_path, model_mirror)
    assert (tmp_path / (small.file + ".sha256")).read_text().startswith(f"sha256={small.sha256} ")
    monkeypatch.setattr(_fetch, "_hash_cache", {})  # as if in a new process

    def no_hash(p: Path) -> str:
        raise AssertionError(f"{p} was hashed again")

    monkeypatch.setattr(_fetch, "_hash_file", no_hash)
    assert verify(small, tmp_path).ok
    monkeypatch.undo()
    # A changed file (new mtime) is hashed again, sidecar or not.
    _flip_byte(path)
    result = verify(small, tmp_path)
    assert not result.ok and f"expected {small.sha256}" in result.detail
    assert sha256_file(path, cached=False) != small.sha256


def test_resolve_missing_or_corrupt_tells_how_to_fix(
    small: ModelSpec, model_mirror: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        ModelNotFoundError, match=r"missing.*`trapflow models pull yolox_nano_coco`"
    ):
        resolve(small, tmp_path)
    path = pull(small, tmp_path, model_mirror)
    _flip_byte(path)
    with pytest.raises(ModelNotFoundError, match="sha256"):
        resolve(small, tmp_path)
    assert pull(small, tmp_path, model_mirror) == path  # a corrupt local copy is replaced
    assert resolve(small, tmp_path) == path and sha256_file(path) == small.sha256


def test_corrupt_mirror_copy_is_refused(
    small: ModelSpec, small_mirror: Path, tmp_path: Path
) -> None:
    _flip_byte(small_mirror / small.file)
    dest = tmp_path / "models"
    with pytest.raises(ModelVerificationError) as err:
        pull(small, dest, str(small_mirror))
    msg = str(err.value)
    assert small.model_id in msg and f"expected {small.sha256}" in msg
    assert str(small_mirror / small.file) in msg and "re-sync the mirror" in msg
    assert not (dest / small.file).exists() and _leftovers(tmp_path) == []


def test_truncated_mirror_copy_is_refused(
    small: ModelSpec, small_mirror: Path, tmp_path: Path
) -> None:
    src = small_mirror / small.file
    src.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(ModelVerificationError, match=f"has 1000 bytes, expected {small.size}"):
        pull(small, tmp_path / "models", small_mirror)
    assert _leftovers(tmp_path) == []


def test_missing_from_mirror_and_no_mirror(small: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="is not in the mirror"):
        pull(small, tmp_path / "models", tmp_path / "empty-mirror")
    with pytest.raises(ModelFetchError, match="TRAPFLOW_MODEL_MIRROR"):
        pull(small, tmp_path / "models", None)


def test_manifest_paths_cannot_escape_the_model_dir(small: ModelSpec, tmp_path: Path) -> None:
    evil = dataclasses.replace(small, file="../outside.onnx")
    with pytest.raises(ModelFetchError, match="relative"):
        pull(evil, tmp_path / "models", tmp_path)


def test_default_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAPFLOW_MODEL_MIRROR", "https://models.example.org/trapflow")
    assert default_mirror(tmp_path / "checkout") == "https://models.example.org/trapflow"
    monkeypatch.delenv("TRAPFLOW_MODEL_MIRROR")
    assert default_mirror(tmp_path / "checkout") is None
    (tmp_path / "shared" / "models").mkdir(parents=True)
    assert default_mirror(tmp_path / "checkout") == str(tmp_path / "shared" / "models")


# --- HTTP mirror ------------------------------------------------------------------------


@dataclass
class _Server:
    root: Path
    base: str = ""
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    die_after: int | None = None  # send this many body bytes, then drop the connection
    honour_range: bool = True


class _Handler(BaseHTTPRequestHandler):
    """Serves files under ``state.root``; ``Range: bytes=N-`` gets a 206."""

    state: _Server  # set on a subclass per server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        st = self.state
        rng = self.headers.get("Range")
        if body:
            st.requests.append((self.path, rng, self.headers.get("Authorization")))
        path = st.root / unquote(urlsplit(self.path).path).lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and st.honour_range:
            start = int(m[1])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not body:
            return
        if st.die_after is None:
            self.wfile.write(data)
            return
        self.wfile.write(data[: st.die_after])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server(small_mirror: Path) -> Iterator[_Server]:
    state = _Server(root=small_mirror.parent)
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}/{small_mirror.name}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_http_pull(small: ModelSpec, server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "models"
    path = pull(small, dest, server.base + "/")  # a trailing slash is fine
    assert verify(small, dest).ok and path == dest / small.file
    assert [r[0] for r in server.requests] == [
        f"/mirror/{small.file}",
        *(f"/mirror/{e.file}" for e in small.extra_files),
    ]
    server.requests.clear()
    pull(small, dest, server.base)
    assert server.requests == []  # verified: nothing downloaded again (HEADs are not logged)


def test_http_interrupted_download_resumes_with_range(
    small: ModelSpec, server: _Server, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    half = small.size // 2
    server.die_after = half
    with pytest.raises(ModelFetchError, match=r"stopped after \d+ bytes.*run the pull again"):
        pull(small, dest, server.base)
    part = dest / (small.file + ".part")
    assert part.stat().st_size == half and not (dest / small.file).exists()

    server.die_after = None
    server.requests.clear()
    path = pull(small, dest, server.base)
    assert server.requests[0][1] == f"bytes={half}-"
    assert sha256_file(path, cached=False) == small.sha256 and not part.exists()


def test_http_server_ignoring_range_restarts(
    small: ModelSpec, server: _Server, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    server.die_after = 12345
    with pytest.raises(ModelFetchError):
        pull(small, dest, server.base)
    server.die_after, server.honour_range = None, False
    assert verify(small, dest).ok is False
    pull(small, dest, server.base)
    assert verify(small, dest, rehash=True).ok


def test_http_corrupt_file_is_refused(
    small: ModelSpec, server: _Server, small_mirror: Path, tmp_path: Path
) -> None:
    _flip_byte(small_mirror / small.file)
    dest = tmp_path / "models"
    with pytest.raises(ModelVerificationError, match=f"from {re.escape(server.base)}/") as err:
        pull(small, dest, server.base)
    assert f"expected {small.sha256}" in str(err.value)
    assert not (dest / small.file).exists() and _leftovers(dest) == []


def test_http_credentials_are_sent_but_never_shown(
    small: ModelSpec, server: _Server, tmp_path: Path
) -> None:
    secret_base = server.base.replace("http://", "http://alice:s3cret@") + "/missing?token=abc123"
    with pytest.raises(ModelFetchError, match="HTTP 404") as err:
        pull(small, tmp_path / "models", secret_base)
    assert "s3cret" not in str(err.value) and "abc123" not in str(err.value)
    assert "alice" not in str(err.value)
    token = base64.b64encode(b"alice:s3cret").decode()
    assert server.requests[0][2] == f"Basic {token}"
    assert server.requests[0][0] == f"/mirror/missing/{small.file}?token=abc123"


def test_official_url_first_then_mirror(
    small: ModelSpec, server: _Server, small_mirror: Path, tmp_path: Path
) -> None:
    official = dataclasses.replace(small, url=f"{server.base}/gone/yolox_nano.onnx")
    path = pull(official, tmp_path / "models", small_mirror)
    assert server.requests[0][0] == "/mirror/gone/yolox_nano.onnx"  # tried, 404
    assert sha256_file(path) == small.sha256


def test_unsupported_mirror_scheme(small: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="neither a folder nor an http"):
        pull(small, tmp_path, "ftp://example.org/models")
    assert os.listdir(tmp_path) == []
