"""The edge's work on disk: one SQLite file (stdlib ``sqlite3``) of the photos seen and the
uploads still to do, so a lost network, a reboot or a full disk loses nothing.

``photos``: one row per card file (path, size and mtime: a file seen before is not hashed
again), its media id, EXIF time, best score per category and the decision (``upload`` or
``kept`` on the card). ``uploads``: what goes to the target, by priority (:data:`PRIORITY`:
people, then animals and vehicles, then manifests) and then in the order it was queued; a row
is ``pending`` until the target holds the whole object, then ``done``. A key is queued once
(``insert or ignore``), so a rescan or a resumed run never uploads a photo twice.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Upload order: lower first. People first (a poacher is news), then animals and vehicles,
#: then the manifests (they name every photo, the blanks too).
PRIORITY = {"person": 0, "vehicle": 1, "animal": 1, "unreadable": 1, "manifest": 2}

_SCHEMA = """
create table if not exists photos (
    path        text primary key,   -- relative to the card, '/'-separated
    size        integer not null,
    mtime_ns    integer not null,
    media_id    text not null,      -- flows.store.ids.media_id: SHA-256 of the bytes
    captured_at text,               -- EXIF time (camera-local, ISO), else null
    scores      text not null,      -- JSON: category -> best confidence
    decision    text not null,      -- 'upload' | 'kept'
    key         text,               -- remote key when uploaded
    manifest    text,               -- the manifest key that lists it
    scanned_at  text not null
);
create table if not exists uploads (
    seq         integer primary key autoincrement,
    key         text not null unique,
    local_path  text not null,      -- absolute path of the file to upload
    kind        text not null,      -- person | animal | vehicle | manifest
    priority    integer not null,
    size        integer not null,
    status      text not null default 'pending',  -- pending | done | missing (gone from the card)
    attempts    integer not null default 0,
    last_error  text,
    queued_at   text not null,
    done_at     text
);
create index if not exists uploads_order on uploads (status, priority, seq);
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Upload:
    seq: int
    key: str
    local_path: str
    kind: str
    size: int
    attempts: int


class EdgeQueue:
    """The SQLite file at ``path``; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._con.execute("pragma journal_mode=wal")
        self._con.execute("pragma synchronous=full")
        self._con.executescript(_SCHEMA)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> EdgeQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ photos
    def known(self, path: str, size: int, mtime_ns: int) -> bool:
        row = self._con.execute(
            "select 1 from photos where path = ? and size = ? and mtime_ns = ?",
            (path, size, mtime_ns),
        ).fetchone()
        return row is not None

    def key_of(self, media_id: str) -> str | None:
        """The key a photo with these bytes already went up under (a copy on the card)."""
        row = self._con.execute(
            "select key from photos where media_id = ? and key is not null limit 1", (media_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def unlisted_photos(self) -> list[dict[str, Any]]:
        """Photos no manifest lists yet (the next manifest's rows), in path order."""
        with closing(
            self._con.execute("select * from photos where manifest is null order by path")
        ) as cur:
            names = [d[0] for d in cur.description]
            return [
                {**dict(zip(names, row, strict=True)), "scores": json.loads(row[5])}
                for row in cur.fetchall()
            ]

    def add_photo(
        self,
        *,
        path: str,
        size: int,
        mtime_ns: int,
        media_id: str,
        captured_at: str | None,
        scores: dict[str, float],
        decision: str,
        key: str | None,
        local_path: str,
        kind: str | None,
    ) -> None:
        """Record a scanned photo and, when it goes up, queue it: one transaction."""
        with self._transaction() as con:
            con.execute(
                "insert or replace into photos (path, size, mtime_ns, media_id, captured_at, "
                "scores, decision, key, manifest, scanned_at) values (?, ?, ?, ?, ?, ?, ?, ?, "
                "null, ?)",
                (path, size, mtime_ns, media_id, captured_at, json.dumps(scores), decision, key,
                 _now()),
            )  # fmt: skip
            if key is not None and kind is not None:
                self._queue(con, key, local_path, kind, size)

    def add_manifest(self, key: str, local_path: str, size: int, paths: list[str]) -> None:
        """Queue a manifest file and mark the photos it lists: one transaction."""
        with self._transaction() as con:
            self._queue(con, key, local_path, "manifest", size)
            con.executemany(
                "update photos set manifest = ? where path = ?", [(key, p) for p in paths]
            )

    @staticmethod
    def _queue(con: sqlite3.Connection, key: str, local_path: str, kind: str, size: int) -> None:
        con.execute(
            "insert or ignore into uploads (key, local_path, kind, priority, size, queued_at) "
            "values (?, ?, ?, ?, ?, ?)",
            (key, local_path, kind, PRIORITY[kind], size, _now()),
        )

    # ------------------------------------------------------------------ uploads
    def next_upload(self) -> Upload | None:
        """The first pending upload: lowest priority number, then first queued."""
        row = self._con.execute(
            "select seq, key, local_path, kind, size, attempts from uploads "
            "where status = 'pending' order by priority, seq limit 1"
        ).fetchone()
        return Upload(*row) if row else None

    def mark_done(self, seq: int) -> None:
        self._con.execute(
            "update uploads set status = 'done', done_at = ?, last_error = null where seq = ?",
            (_now(), seq),
        )

    def mark_missing(self, seq: int) -> None:
        """The file left the card before it went up: never retried, counted as missing."""
        self._con.execute("update uploads set status = 'missing' where seq = ?", (seq,))

    def mark_failed(self, seq: int, error: str) -> None:
        self._con.execute(
            "update uploads set attempts = attempts + 1, last_error = ? where seq = ?",
            (error[:500], seq),
        )

    def counts(self) -> dict[str, int]:
        """Photos scanned, uploaded, kept; uploads pending and done."""
        con = self._con
        photos = dict(con.execute("select decision, count(*) from photos group by 1").fetchall())
        uploads = dict(con.execute("select status, count(*) from uploads group by 1").fetchall())
        return {
            "photos": sum(photos.values()),
            "to_upload": photos.get("upload", 0),
            "kept": photos.get("kept", 0),
            "pending": uploads.get("pending", 0),
            "done": uploads.get("done", 0),
            "missing": uploads.get("missing", 0),
        }

    def done_bytes(self) -> int:
        row = self._con.execute("select coalesce(sum(size), 0) from uploads where status = 'done'")
        return int(row.fetchone()[0])

    def _transaction(self) -> _Tx:
        return _Tx(self._con)


class _Tx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("begin immediate")
        return self.con

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.con.execute("rollback" if exc_type is not None else "commit")
