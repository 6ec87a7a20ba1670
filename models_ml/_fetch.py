"""Verified local copies of model files: pull (copy or download), verify, resolve.

A model's files come from its official URL when the manifest has one, otherwise (or when that
fails) from the model mirror: a folder or an http(s) base URL laid out as ``<mirror>/<file>``.
Every file is streamed into ``<dest>.part`` while it is hashed, checked against the manifest's
SHA-256 and size, and only then renamed into place; a mismatch leaves nothing behind. A
verified file is never fetched again, so calling :func:`pull` before every run is cheap.
Interrupted HTTP downloads resume with a ``Range`` request.

Hashing 20 MB takes tens of milliseconds, so hashes are cached in-process by (path, size,
mtime) and in a ``<file>.sha256`` sidecar written after each verified pull.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from models_ml.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from models_ml.registry import ModelSpec

__all__ = [
    "MIRROR_ENV",
    "ModelError",
    "ModelFetchError",
    "ModelNotFoundError",
    "ModelVerificationError",
    "VerifyResult",
    "default_mirror",
    "pull",
    "resolve",
    "sha256_file",
    "verify",
]

#: Environment variable naming the model mirror (a folder or an http(s) base URL).
MIRROR_ENV = "TRAPFLOW_MODEL_MIRROR"
DEFAULT_TIMEOUT = 30.0  # seconds, per connect and per read
_CHUNK = 1 << 20
_USER_AGENT = "trapflow-model-pull"
_LOCK_NAME = ".pull.lock"  # in the model directory
_MIRROR_ADVICE = (
    f"the mirror copy is corrupt or a different version; re-sync the mirror or fix {MIRROR_ENV}"
)
_OFFICIAL_ADVICE = (
    "the download is corrupt or the file at the official URL changed; retry, or pull from "
    f"a mirror ({MIRROR_ENV}) and check the manifest's sha256"
)


class ModelError(UserError):
    """Base class of the registry's errors (user errors: the message says what to do)."""


class ModelFetchError(ModelError):
    """A model file could not be copied or downloaded (missing, network, disk)."""


class ModelVerificationError(ModelError):
    """A copied or downloaded file does not match the manifest's SHA-256 or size."""


class ModelNotFoundError(ModelError):
    """No verified local copy of a model: run ``trapflow models pull``."""


@dataclass(frozen=True)
class VerifyResult:
    """Whether a model's local files match the manifest; ``detail`` says what is wrong."""

    name: str
    ok: bool
    detail: str
    path: Path  # the model file (present or not)


@dataclass(frozen=True)
class _File:
    rel: str  # path relative to the mirror / model dir, '/'-separated
    sha256: str | None
    size: int | None
    official_url: str = ""


def _files(spec: ModelSpec) -> list[_File]:
    main = _File(spec.file, spec.sha256.lower(), spec.size, spec.url)
    extras = [_File(e.file, e.sha256.lower() if e.sha256 else None, None) for e in spec.extra_files]
    return [main, *extras]


# --- public API -------------------------------------------------------------------------


def default_mirror(repo_root: Path | None = None) -> str | None:
    """``$TRAPFLOW_MODEL_MIRROR``, else ``../shared/models`` beside the checkout if it exists."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return env
    root = repo_root if repo_root is not None else Path(__file__).resolve().parents[1]
    beside = Path(root).resolve().parent / "shared" / "models"
    return str(beside) if beside.is_dir() else None


def pull(
    spec: ModelSpec,
    dest_dir: Path,
    mirror: str | os.PathLike[str] | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Make ``dest_dir`` hold verified copies of the model's files; return the model file.

    Files already present and verified are left alone. Others are fetched from the official
    URL (the model file only, when the manifest has one), then from ``<mirror>/<file>``.

    Raises:
        ModelVerificationError: the fetched bytes do not match the manifest (nothing is kept).
        ModelFetchError: no source could be read (an interrupted HTTP download is kept as
            ``<file>.part`` and resumed by the next pull).
    """
    dest_dir = Path(dest_dir)
    for f in _files(spec):
        _pull_file(spec, f, dest_dir, mirror, timeout)
    return _dest(dest_dir, spec.file)


def verify(spec: ModelSpec, model_dir: Path, *, rehash: bool = False) -> VerifyResult:
    """Check the model's local files against the manifest (size, then SHA-256).

    ``rehash=True`` ignores the hash caches (in-process and sidecar) and reads every byte.
    """
    model_dir = Path(model_dir)
    problems: list[str] = []
    files = _files(spec)
    for f in files:
        dest = _dest(model_dir, f.rel)
        if not dest.is_file():
            problems.append(f"{f.rel} is missing")
            continue
        size = dest.stat().st_size
        if f.size is not None and size != f.size:
            problems.append(f"{f.rel} has {size} bytes, expected {f.size}")
        elif f.sha256 is not None:
            got = sha256_file(dest, cached=not rehash)
            if got != f.sha256:
                problems.append(f"{f.rel} has sha256 {got}, expected {f.sha256}")
    path = _dest(model_dir, spec.file)
    if problems:
        return VerifyResult(spec.name, False, "; ".join(problems), path)
    checked = sum(1 for f in files if f.sha256)
    return VerifyResult(spec.name, True, f"{len(files)} files present, {checked} sha256 ok", path)


def resolve(spec: ModelSpec, model_dir: Path) -> Path:
    """The verified local model file, or :class:`ModelNotFoundError` saying how to get it."""
    result = verify(spec, model_dir)
    if not result.ok:
        raise ModelNotFoundError(
            f"model {spec.model_id} is not ready in {model_dir}: {result.detail}. "
            f"Run `trapflow models pull {spec.name}` (it copies the files from the mirror, "
            f"{MIRROR_ENV}, and checks their SHA-256)."
        )
    return result.path


# --- hashing ----------------------------------------------------------------------------

_hash_lock = threading.Lock()
_hash_cache: dict[tuple[str, int, int, int], str] = {}


def sha256_file(path: Path, *, cached: bool = True) -> str:
    """SHA-256 (hex) of a file, streamed; cached by (path, size, mtime) when ``cached``."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if cached:
        with _hash_lock:
            hit = _hash_cache.get(key)
        if hit is None:
            hit = _read_sidecar(path, st)
        if hit is not None:
            with _hash_lock:
                _hash_cache[key] = hit
            return hit
    digest = _hash_file(path)
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path, st: os.stat_result) -> str | None:
    """The hash a verified pull recorded for exactly this size and mtime, if any."""
    try:
        text = _sidecar(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    digest = fields.get("sha256", "")
    same = fields.get("size") == str(st.st_size) and fields.get("mtime_ns") == str(st.st_mtime_ns)
    return digest if same and re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _write_sidecar(path: Path, digest: str) -> None:
    st = path.stat()
    with _hash_lock:
        _hash_cache[(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)] = digest
    line = f"sha256={digest} size={st.st_size} mtime_ns={st.st_mtime_ns}\n"
    with contextlib.suppress(OSError):  # a read-only model dir costs a re-hash next time
        _sidecar(path).write_text(line, encoding="ascii")


# --- pulling ----------------------------------------------------------------------------


def _dest(root: Path, rel: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise ModelFetchError(f"manifest file path {rel!r} must be relative, without '..'")
    return root.joinpath(*parts)


def _pull_file(
    spec: ModelSpec,
    f: _File,
    dest_dir: Path,
    mirror: str | os.PathLike[str] | None,
    timeout: float,
) -> None:
    dest = _dest(dest_dir, f.rel)
    sources: list[Path | str] = []
    if f.official_url:
        sources.append(_official(f.official_url))
    if mirror is not None and os.fspath(mirror).strip():
        sources.append(_mirror_location(os.fspath(mirror).strip(), f.rel))
    if dest.is_file() and _is_verified(dest, f, sources, timeout):
        return
    if not sources:
        raise ModelFetchError(
            f"{spec.model_id}: nowhere to get {f.rel} from: the manifest has no official URL "
            f"and no model mirror is set; set {MIRROR_ENV} to a folder or http(s) URL"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest_dir):
        if dest.is_file() and _is_verified(dest, f, sources, timeout):
            return  # another process pulled it meanwhile
        part = dest.with_name(dest.name + ".part")
        errors: list[ModelError] = []
        for src in sources:
            try:
                digest = _fetch(spec, f, src, part, timeout)
            except (ModelFetchError, ModelVerificationError) as exc:
                errors.append(exc)
                continue
            os.replace(part, dest)
            if f.sha256:
                _write_sidecar(dest, digest)
            return
    if len(errors) == 1:
        raise errors[0]
    kind = (
        ModelVerificationError
        if any(isinstance(e, ModelVerificationError) for e in errors)
        else ModelFetchError
    )
    raise kind("\n".join(str(e) for e in errors)) from errors[-1]


def _is_verified(dest: Path, f: _File, sources: list[Path | str], timeout: float) -> bool:
    size = dest.stat().st_size
    if f.size is not None and size != f.size:
        return False
    if f.sha256 is not None:
        return sha256_file(dest) == f.sha256
    # No hash in the manifest (licence texts): the same size as the source, when known.
    source_size = _source_size(sources[-1], timeout) if sources else None
    return source_size is None or source_size == size


@contextlib.contextmanager
def _locked(dest_dir: Path) -> Iterator[None]:
    """One puller per model directory, across threads and processes (POSIX ``flock``)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with (dest_dir / _LOCK_NAME).open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fetch(spec: ModelSpec, f: _File, src: Path | str, part: Path, timeout: float) -> str:
    """Stream ``src`` into ``part``, check it, and return its SHA-256."""
    hasher = hashlib.sha256()
    where = str(src) if isinstance(src, Path) else _redact(src)
    if isinstance(src, Path):
        _copy(spec, f, src, part, hasher)
    else:
        _download(spec, f, src, part, hasher, timeout)
    size = part.stat().st_size
    digest = hasher.hexdigest()
    advice = _OFFICIAL_ADVICE if f.official_url and src == _official(f.official_url) else None
    advice = advice or _MIRROR_ADVICE
    problem = None
    if f.size is not None and size != f.size:
        problem = f"has {size} bytes, expected {f.size}"
    elif f.sha256 is not None and digest != f.sha256:
        problem = f"has sha256 {digest}, expected {f.sha256}"
    if problem:
        part.unlink(missing_ok=True)
        raise ModelVerificationError(
            f"{spec.model_id}: {f.rel} from {where} {problem}: {advice}. Nothing was installed."
        )
    return digest


def _copy(spec: ModelSpec, f: _File, src: Path, part: Path, hasher: hashlib._Hash) -> None:
    try:
        fin = src.open("rb")
    except FileNotFoundError:
        raise ModelFetchError(
            f"{spec.model_id}: {f.rel} is not in the mirror ({src} does not exist); "
            f"check {MIRROR_ENV}"
        ) from None
    except OSError as exc:
        raise ModelFetchError(f"{spec.model_id}: cannot read {src}: {exc}") from exc
    try:
        with fin, part.open("wb") as out:
            while chunk := fin.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
            _sync(out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ModelFetchError(f"{spec.model_id}: copying {src} to {part} failed: {exc}") from exc


def _download(
    spec: ModelSpec, f: _File, url: str, part: Path, hasher: hashlib._Hash, timeout: float
) -> None:
    shown = _redact(url)
    offset = part.stat().st_size if part.is_file() else 0
    if f.size is not None and offset >= f.size:
        offset = 0  # complete but unverified, or too big: start again
    try:
        resp = _open(url, timeout, offset)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the server has fewer bytes than the part file
            part.unlink(missing_ok=True)
            offset = 0
            try:
                resp = _open(url, timeout, 0)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc2:
                raise _fetch_error(spec, f, shown, exc2) from exc2
        else:
            raise _fetch_error(spec, f, shown, exc) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise _fetch_error(spec, f, shown, exc) from exc

    with resp:
        resumed = offset > 0 and resp.status == 206 and _range_start(resp) == offset
        if resumed:
            with part.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    hasher.update(chunk)
        else:
            offset = 0  # the server sent the whole file
        length = _content_length(resp)
        received = 0
        with part.open("ab" if resumed else "wb") as out:
            try:
                while chunk := resp.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    if f.size is not None and offset + received > f.size:
                        break  # more than the manifest's size: the size check reports it
            except (OSError, http.client.HTTPException) as exc:
                _sync(out)
                raise _incomplete(spec, f, shown, part, offset + received, exc) from exc
            _sync(out)
    expected = offset + length if length is not None else f.size
    if expected is not None and offset + received < expected:
        raise _incomplete(spec, f, shown, part, offset + received, None)


def _open(
    url: str, timeout: float, offset: int = 0, method: str = "GET"
) -> http.client.HTTPResponse:
    """Request ``url`` (credentials in it become a Basic header, never sent on redirect)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}")
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    headers = {"User-Agent": _USER_AGENT}
    req = urllib.request.Request(clean, headers=headers, method=method)  # noqa: S310
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        req.add_unredirected_header("Authorization", f"Basic {token}")
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp: http.client.HTTPResponse = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection
        raise
    return resp


def _source_size(src: Path | str, timeout: float) -> int | None:
    """The size of the source file, when cheaply known (stat, or an HTTP HEAD)."""
    try:
        if isinstance(src, Path):
            return src.stat().st_size
        with _open(src, timeout, method="HEAD") as resp:
            return _content_length(resp)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
        return None


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _range_start(resp: http.client.HTTPResponse) -> int | None:
    m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return int(m[1]) if m else None


def _sync(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _fetch_error(spec: ModelSpec, f: _File, shown: str, exc: BaseException) -> ModelFetchError:
    if isinstance(exc, urllib.error.HTTPError):
        why = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        why = str(exc.reason)
    else:
        why = f"{type(exc).__name__}: {exc}"
    return ModelFetchError(f"{spec.model_id}: downloading {f.rel} from {shown} failed ({why})")


def _incomplete(
    spec: ModelSpec, f: _File, shown: str, part: Path, have: int, exc: BaseException | None
) -> ModelFetchError:
    why = f" ({type(exc).__name__}: {exc})" if exc else ""
    return ModelFetchError(
        f"{spec.model_id}: the download of {f.rel} from {shown} stopped after {have} bytes"
        f"{why}; the partial file {part.name} is kept, run the pull again to resume"
    )


# --- locations --------------------------------------------------------------------------


def _official(url: str) -> str:
    return url.strip()


def _mirror_location(mirror: str, rel: str) -> Path | str:
    """``<mirror>/<rel>``: a path for a folder (or file: URL), a URL for an http(s) mirror."""
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme in ("http", "https"):
        path = parts.path.rstrip("/") + "/" + urllib.parse.quote(rel)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path)).joinpath(*PurePosixPath(rel).parts)
    if len(parts.scheme) > 1:  # (one letter: a Windows drive)
        raise ModelFetchError(
            f"model mirror {_redact(mirror)!r} is neither a folder nor an http(s) URL; "
            f"fix {MIRROR_ENV}"
        )
    return Path(mirror).expanduser().joinpath(*PurePosixPath(rel).parts)


def _redact(url: str) -> str:
    """A URL fit for messages and logs: no user/password, no query (tokens live there)."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        query = "..." if parts.query else ""
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unparseable URL>"
