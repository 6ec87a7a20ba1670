"""Listing a source (a folder or any fsspec URL) and naming what is found.

Plain functions, no Prefect: the ingest flow's tasks call these.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from flows.errors import UserError
from flows.store import ids


@dataclass(frozen=True)
class SourceFile:
    """One file under the source root."""

    path: str  # relative to the root, '/'-separated
    size: int
    modified_at: datetime | None  # UTC, naive


@dataclass(frozen=True)
class Listing:
    source_uri: str
    media: tuple[SourceFile, ...]  # media files, in path order
    other_files: int  # files that are not media (metadata, videos for now, ...)
    outside_root: tuple[str, ...]  # symlinks that point outside the root: never followed


class SourceNotFoundError(UserError, FileNotFoundError):
    """The source folder does not exist (a user error: the message says what to pass)."""


def open_source(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a source URI; local folders become absolute paths."""
    fs, root = fsspec.core.url_to_fs(uri)
    if isinstance(fs, LocalFileSystem):
        root = os.path.realpath(os.path.expanduser(root))
        if not os.path.isdir(root):
            raise SourceNotFoundError(
                f"source folder {root} does not exist: pass an existing folder with --source "
                "or set TRAPFLOW_SOURCE"
            )
    return fs, root.rstrip("/")


def canonical_uri(uri: str) -> str:
    """The form stored in the warehouse: absolute local paths, URLs unchanged."""
    fs, root = open_source(uri)
    if isinstance(fs, LocalFileSystem):
        return root
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    return f"{protocol}://{root}"


def _modified(info: dict[str, Any]) -> datetime | None:
    raw = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.astimezone(UTC).replace(tzinfo=None) if raw.tzinfo else raw
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def list_source(uri: str, extensions: Iterable[str]) -> Listing:
    """Every media file under ``uri`` (recursively), with size and modification time.

    Extensions match case-insensitively. On a local disk, links that resolve outside the
    root are reported, not followed, so nothing outside the source is ever read.
    """
    fs, root = open_source(uri)
    wanted = {e.lower().lstrip(".") for e in extensions}
    local = isinstance(fs, LocalFileSystem)
    media: list[SourceFile] = []
    other = 0
    outside: list[str] = []
    for full, info in sorted(fs.find(root, withdirs=False, detail=True).items()):
        link = bool(local and info.get("islink"))
        if info.get("type") not in (None, "file") and not link:
            continue
        rel = posixpath.relpath(full, root) if not local else os.path.relpath(full, root)
        rel = rel.replace(os.sep, "/")
        if local and not _inside(full, root):
            outside.append(rel)
            continue
        if link:  # a link inside the root: use what it points to, if that is a file
            if not os.path.isfile(full):
                continue
            st = os.stat(full)
            info = {"size": st.st_size, "mtime": st.st_mtime}
        ext = rel.rsplit(".", 1)[-1].lower() if "." in rel.rsplit("/", 1)[-1] else ""
        if ext not in wanted:
            other += 1
            continue
        media.append(SourceFile(rel, int(info.get("size") or 0), _modified(info)))
    return Listing(canonical_uri(uri), tuple(media), other, tuple(outside))


def stat_file(uri: str, rel_path: str) -> SourceFile:
    """One named file under the source, found without listing anything (``trapflow listen``).

    Raises ``FileNotFoundError`` when it is not there (or, on a local disk, resolves outside
    the root), ``OSError`` when it cannot be reached."""
    fs, root = open_source(uri)
    full = f"{root}/{rel_path.lstrip('/')}"
    if isinstance(fs, LocalFileSystem):
        if not _inside(full, root):
            raise FileNotFoundError(f"{rel_path} resolves outside the source folder")
        st = os.stat(full)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"{rel_path} is not a file")
        return SourceFile(rel_path, st.st_size, _modified({"mtime": st.st_mtime}))
    fs.invalidate_cache(full)  # a key notified as new must not be answered from a listing
    info = fs.info(full)
    if info.get("type") not in (None, "file"):
        raise FileNotFoundError(f"{rel_path} is not a file")
    return SourceFile(rel_path, int(info.get("size") or 0), _modified(info))


def unseen(files: Iterable[SourceFile], known: dict[str, tuple[int, Any]]) -> list[SourceFile]:
    """The files the store has not seen in this form (path, size and mtime)."""
    return [f for f in files if known.get(f.path) != (f.size, f.modified_at)]


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def read_file(uri: str, rel_path: str) -> bytes:
    """The bytes of one file under the source root."""
    fs, root = open_source(uri)
    data: bytes = fs.cat_file(f"{root}/{rel_path}")
    return data


def sha256_hex(data: bytes) -> str:
    """A file's media_id (``flows.store.ids.media_id``)."""
    return ids.media_id(data)


@lru_cache(maxsize=32)
def _layout_regex(layout: str) -> re.Pattern[str]:
    """'{site}/{camera}/...' -> a regex over the relative folder path.

    ``{name}`` matches one folder (or part of a name, e.g. '{site}_{camera}'), ``*`` any one
    folder, and a trailing ``...`` any number of folders below.
    """
    pattern = layout.strip().strip("/")
    tail = pattern.endswith("...")
    if tail:
        pattern = pattern[:-3].rstrip("/")
    parts = re.split(r"(\{[a-z_]+\}|\*)", pattern)
    rx = []
    for part in parts:
        if part == "*":
            rx.append(r"[^/]+")
        elif part.startswith("{") and part.endswith("}"):
            rx.append(rf"(?P<{part[1:-1]}>[^/]+?)")
        else:
            rx.append(re.escape(part))
    return re.compile("^" + "".join(rx) + (r"(?:/.*)?$" if tail else "$"))


def site_and_camera(rel_path: str, layout: str | None) -> tuple[str, str]:
    """Site and camera of a file: from the layout pattern, else the parent folder's name.

    A file that does not fit the pattern falls back to the parent folder, so one odd
    folder never stops a run.
    """
    folder = posixpath.dirname(rel_path)
    parent = posixpath.basename(folder) or "(root)"
    if layout:
        match = _layout_regex(layout).match(folder)
        if match:
            groups = match.groupdict()
            site = groups.get("site") or parent
            return site, groups.get("camera") or site
    return parent, parent


def layout_species(rel_path: str, layout: str | None) -> str | None:
    """The ``{species}`` folder of a file's path under the layout (camtrapR's species
    directories), else None."""
    if not layout or "{species}" not in layout:
        return None
    match = _layout_regex(layout).match(posixpath.dirname(rel_path))
    return (match.groupdict().get("species") or None) if match else None


def chunked(items: Iterable[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    batch: list[SourceFile] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
