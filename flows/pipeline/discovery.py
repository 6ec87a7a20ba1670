"""Listing a source (a folder or any fsspec URL) and naming what is found.

Plain functions, no Prefect: the ingest flow's tasks call these.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import fsspec
import pyarrow as pa
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
    pruned_folders: int = 0  # date folders not listed (older than the newest known month)


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


def list_source(
    uri: str,
    extensions: Iterable[str],
    *,
    layout: str | None = None,
    newest: dict[str, tuple[int, ...]] | None = None,
) -> Listing:
    """Every media file under ``uri`` (recursively), with size and modification time.

    Extensions match case-insensitively. On a local disk (``os.scandir``, iteratively) links
    that resolve outside the root are reported, not followed, so nothing outside the source is
    ever read; a link to a folder inside the root is not followed (its target is listed).

    ``newest`` (:func:`newest_months` of the known files) prunes a date layout: under each
    camera's folder, date folders older than its newest known month are not listed
    (see :func:`_date_plan`; ``docs/polling.md``). None: everything is listed.
    """
    fs, root = open_source(uri)
    wanted = frozenset(e.lower().lstrip(".") for e in extensions)
    plan = _date_plan(layout) if newest else None
    walk = _Walk(wanted, plan, newest or {})
    if isinstance(fs, LocalFileSystem):
        walk.local(root)
    else:
        walk.remote(fs, root)
    walk.media.sort(key=lambda f: f.path)
    return Listing(
        canonical_uri(uri), tuple(walk.media), walk.other, tuple(sorted(walk.outside)),
        walk.pruned,
    )  # fmt: skip


def poll_source(
    uri: str,
    extensions: Iterable[str],
    known: pa.Table,
    *,
    layout: str | None = None,
    full: bool = True,
) -> tuple[Listing, list[SourceFile]]:
    """The source's listing and its new or changed files against ``known`` (a store's
    ``known_file_table``). ``full=False`` lists only each camera's newest known month and
    anything newer when the layout has date folders; a periodic full listing
    (``full_listing_every_n``) catches a late file in an older month."""
    newest = None if full else newest_months(known_folders(known), layout)
    listing = list_source(uri, extensions, layout=layout, newest=newest)
    return listing, new_or_changed(listing.media, known)


def wants_full_listing(forced: bool, every_n: int, runs: int) -> bool:
    """Whether this poll lists the whole source: when asked (``--full-listing``), on a source's
    first run, and on every ``every_n``-th run after it (0: never again)."""
    return forced or runs == 0 or (every_n > 0 and runs % every_n == 0)


def known_folders(known: pa.Table) -> list[str]:
    """The distinct folders (relative, '/'-separated) of the known files."""
    if known.num_rows == 0:
        return []
    import pyarrow.compute as pc

    folders = pc.unique(pc.replace_substring_regex(known["file_path"], r"/[^/]*$", ""))
    return [str(f) for f in folders.to_pylist() if f is not None]


def new_or_changed(files: Sequence[SourceFile], known: pa.Table) -> list[SourceFile]:
    """The files whose path is not known, or known with another size or mtime: one join in
    DuckDB over Arrow (no Python dict of every known file)."""
    if not files or known.num_rows == 0:
        return list(files)
    import duckdb

    listed = pa.table({
        "i": pa.array(range(len(files)), pa.int64()),
        "path": pa.array([f.path for f in files], pa.string()),
        "size": pa.array([f.size for f in files], pa.int64()),
        "mtime": pa.array([f.modified_at for f in files], pa.timestamp("us")),
    })  # fmt: skip
    with duckdb.connect() as con:
        con.register("_listed", listed)
        con.register("_known", known.select(["file_path", "file_size", "file_modified_at"]))
        picked = con.execute(
            "select l.i from _listed l left join _known k on k.file_path = l.path "
            "where k.file_path is null or k.file_size <> l.size "
            "or k.file_modified_at is distinct from l.mtime order by l.i"
        ).fetch_arrow_table()
    return [files[i] for i in picked["i"].to_pylist()]


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


class _Walk:
    """One listing's state: what was found, and which date folders were skipped."""

    def __init__(
        self,
        wanted: frozenset[str],
        plan: _DatePlan | None,
        newest: dict[str, tuple[int, ...]],
    ) -> None:
        self.wanted, self.plan, self.newest = wanted, plan, newest
        self.media: list[SourceFile] = []
        self.other = 0
        self.outside: list[str] = []
        self.pruned = 0

    def _file(self, rel: str, size: int, mtime: Any) -> None:
        if _extension(rel.rsplit("/", 1)[-1]) not in self.wanted:
            self.other += 1
            return
        self.media.append(SourceFile(rel, int(size or 0), _modified({"mtime": mtime})))

    def _skip(self, parts: list[str]) -> bool:
        """Whether the folder ``parts`` (relative to the root) is a date folder older than its
        camera's newest known month."""
        if self.plan is None or not self.plan.covers(len(parts)):
            return False
        skip = self.plan.older(parts, self.newest)
        self.pruned += skip
        return skip

    def local(self, root: str) -> None:
        stack: list[tuple[str, list[str]]] = [(root, [])]
        while stack:
            folder, parts = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:  # unreadable or vanished meanwhile: the next poll sees it
                continue
            for entry in entries:
                rel = "/".join([*parts, entry.name])
                try:
                    if entry.is_symlink():
                        if not _inside(entry.path, root):
                            self.outside.append(rel)
                        elif os.path.isfile(entry.path):
                            st = os.stat(entry.path)
                            self._file(rel, st.st_size, st.st_mtime)
                        continue  # a link to a folder inside the root: the folder is listed
                    if entry.is_dir(follow_symlinks=False):
                        sub = [*parts, entry.name]
                        if not self._skip(sub):
                            stack.append((entry.path, sub))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        self._file(rel, st.st_size, st.st_mtime)
                except OSError:
                    continue

    def remote(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        """Folder by folder down to the date folders (when pruning), then one ``find`` per
        folder kept: an object store lists a whole prefix in one paged call."""
        depth = self.plan.first + len(self.plan.segments) if self.plan is not None else 0
        level: list[tuple[str, list[str]]] = [(root, [])]
        for _ in range(depth):
            below: list[tuple[str, list[str]]] = []
            for folder, parts in level:
                for info in fs.ls(folder, detail=True):
                    name = posixpath.basename(str(info["name"]).rstrip("/"))
                    if info.get("type") == "directory":
                        sub = [*parts, name]
                        if not self._skip(sub):
                            below.append((str(info["name"]).rstrip("/"), sub))
                    elif info.get("type") in (None, "file"):
                        self._info("/".join([*parts, name]), info)
            level = below
        for folder, parts in level:
            for full, info in fs.find(folder, withdirs=False, detail=True).items():
                if info.get("type") in (None, "file"):
                    rel = posixpath.relpath(full, folder)
                    self._info("/".join([*parts, rel]) if parts else rel, info)

    def _info(self, rel: str, info: dict[str, Any]) -> None:
        if _extension(rel.rsplit("/", 1)[-1]) not in self.wanted:
            self.other += 1
            return
        self.media.append(SourceFile(rel, int(info.get("size") or 0), _modified(info)))


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


#: Date tokens of a layout (a folder per month or day): the digits they match, by part.
DATE_TOKENS: dict[str, str] = {
    "yyyy": r"(?P<y>\d{4})",
    "mm": r"(?P<m>\d{2})",
    "dd": r"(?P<d>\d{2})",
    "yyyy-mm": r"(?P<y>\d{4})-(?P<m>\d{2})",
    "yyyy_mm": r"(?P<y>\d{4})_(?P<m>\d{2})",
    "yyyymm": r"(?P<y>\d{4})(?P<m>\d{2})",
    "yyyy-mm-dd": r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})",
    "yyyy_mm_dd": r"(?P<y>\d{4})_(?P<m>\d{2})_(?P<d>\d{2})",
    "yyyymmdd": r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})",
}
_TOKEN = re.compile(r"(\{[a-z_-]+\}|\*)")


def _layout_parts(layout: str) -> tuple[str, bool]:
    pattern = layout.strip().strip("/")
    tail = pattern.endswith("...")
    if tail:
        pattern = pattern[:-3].rstrip("/")
    return pattern, tail


def _part_regex(part: str, *, named_dates: bool) -> str:
    if part == "*":
        return r"[^/]+"
    if part.startswith("{") and part.endswith("}"):
        name = part[1:-1]
        if name in DATE_TOKENS:
            rx = DATE_TOKENS[name]
            return rx if named_dates else re.sub(r"\(\?P<[a-z]>", "(?:", rx)
        if re.fullmatch(r"[a-z_]+", name):
            return rf"(?P<{name}>[^/]+?)"
    return re.escape(part)


@lru_cache(maxsize=32)
def _layout_regex(layout: str) -> re.Pattern[str]:
    """'{site}/{camera}/...' -> a regex over the relative folder path.

    ``{name}`` matches one folder (or part of a name, e.g. '{site}_{camera}'), ``*`` any one
    folder, a date token (:data:`DATE_TOKENS`, e.g. ``{yyyy-mm}``) its digits only, and a
    trailing ``...`` any number of folders below.
    """
    pattern, tail = _layout_parts(layout)
    rx = [_part_regex(part, named_dates=False) for part in _TOKEN.split(pattern)]
    return re.compile("^" + "".join(rx) + (r"(?:/.*)?$" if tail else "$"))


@dataclass(frozen=True)
class _DatePlan:
    """Where a layout's date folders are: from folder ``first`` (0-based), one regex per
    consecutive date folder (``{yyyy}/{mm}`` is two, ``{yyyy-mm}`` one)."""

    first: int
    segments: tuple[re.Pattern[str], ...]

    def covers(self, depth: int) -> bool:
        return self.first < depth <= self.first + len(self.segments)

    def month(self, names: Sequence[str]) -> tuple[int, ...] | None:
        """(year, month), or (year,) for a year folder; None when a name is not a date."""
        found: dict[str, int] = {}
        for rx, name in zip(self.segments, names, strict=False):
            match = rx.fullmatch(name)
            if match is None:
                return None
            found.update({k: int(v) for k, v in match.groupdict().items() if v is not None})
        if not 1 <= found.get("m", 1) <= 12 or not 1 <= found.get("d", 1) <= 31:
            return None  # digits, not a date: an odd folder, listed
        key = tuple(found[k] for k in ("y", "m") if k in found)
        return key or None

    def older(self, parts: Sequence[str], newest: dict[str, tuple[int, ...]]) -> bool:
        best = newest.get("/".join(parts[: self.first]))
        key = self.month(parts[self.first :])
        return best is not None and key is not None and key < best[: len(key)]


@lru_cache(maxsize=32)
def _date_plan(layout: str | None) -> _DatePlan | None:
    """The date folders of a layout such as '{site}/{camera}/{yyyy-mm}/...', else None.

    Pruning needs whole folders of date tokens (and literal text), one after the other, below
    the camera's folders: '{camera}_{yyyy-mm}' or a date before '{camera}' is not pruned.
    """
    if not layout:
        return None
    pattern, _tail = _layout_parts(layout)
    folders = pattern.split("/")
    dated = [i for i, f in enumerate(folders) if any(
        t[1:-1] in DATE_TOKENS for t in _TOKEN.findall(f))]  # fmt: skip
    if not dated or dated != list(range(dated[0], dated[-1] + 1)):
        return None
    segments = []
    for i in dated:
        parts = _TOKEN.split(folders[i])
        if any(p == "*" or (p.startswith("{") and p[1:-1] not in DATE_TOKENS) for p in parts):
            return None
        segments.append(re.compile("".join(_part_regex(p, named_dates=True) for p in parts)))
    return _DatePlan(dated[0], tuple(segments))


def newest_months(folders: Iterable[str], layout: str | None) -> dict[str, tuple[int, ...]]:
    """Camera folder (the layout's folders above the date) -> newest (year, month) among
    these known folders; empty when the layout has no date folders."""
    plan = _date_plan(layout)
    newest: dict[str, tuple[int, ...]] = {}
    if plan is None:
        return newest
    depth = plan.first + len(plan.segments)
    for folder in folders:
        parts = folder.split("/")
        if len(parts) < depth:
            continue
        key = plan.month(parts[plan.first : depth])
        prefix = "/".join(parts[: plan.first])
        if key is not None and key > newest.get(prefix, ()):
            newest[prefix] = key
    return newest


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
