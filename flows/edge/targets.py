"""Where the edge uploads: a folder (a mounted share, a USB disk) or any fsspec URL, such as
``s3://bucket/prefix`` on an S3-compatible store (s3fs; credentials from the usual AWS_*
variables or ~/.aws, never from trapflow's settings or logs).

Every put is whole or nothing, so an upload cut off by a lost network never leaves a partial
object under its key: a folder gets a hidden ``.<name>.part`` file that is renamed over the
key once it is complete and flushed; an object store gets one PUT (an S3 object appears only
once the whole body arrived). A key already holding an object of the same size is not sent
again, so a put repeated after an unanswered success duplicates nothing.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path
from typing import Any, Protocol

from flows.errors import UserError


class TargetError(UserError):
    """The upload target cannot be used as given (one line: what and how to fix it)."""


class Target(Protocol):
    uri: str

    def put(self, local: Path, key: str) -> None: ...

    def size(self, key: str) -> int | None: ...


class FolderTarget:
    """A local or mounted folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def put(self, local: Path, key: str) -> None:
        dest = self._path(key)
        if not self.root.is_dir():  # an unmounted share: an error, never a new local folder
            raise ConnectionError(f"upload folder {self.root} is not there (not mounted?)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.part")
        with local.open("rb") as src, part.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, dest)


class FsspecTarget:
    """An fsspec URL (s3://, gcs://, ...); one whole-object put per key."""

    def __init__(self, uri: str, fs: Any = None) -> None:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is in the edge install
            raise TargetError("uploading to a URL needs fsspec: pip install fsspec") from None
        self.uri = uri.rstrip("/")
        try:
            self.fs, self.root = fs or fsspec.core.url_to_fs(self.uri)[0], _strip(self.uri)
        except (ImportError, ValueError) as exc:
            protocol = uri.split("://", 1)[0]
            hint = " (pip install s3fs)" if protocol in ("s3", "s3a") else ""
            raise TargetError(f"cannot upload to {protocol}:// URLs: {exc}{hint}") from None

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key)

    def size(self, key: str) -> int | None:
        self.fs.invalidate_cache()
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        return int(info.get("size") or info.get("Size") or 0)

    def put(self, local: Path, key: str) -> None:
        self.fs.put_file(str(local), self._path(key))
        self.fs.invalidate_cache()


def _strip(uri: str) -> str:
    return uri.split("://", 1)[1] if "://" in uri else uri


def open_target(uri: str) -> Target:
    """A folder path or ``file://`` URL, else an fsspec URL."""
    if "://" not in uri or uri.startswith("file://"):
        return FolderTarget(Path(uri.removeprefix("file://")))
    return FsspecTarget(uri)
