"""What the ``trapflow listen`` tests share: the real ingest flow counting its runs, and a
bucket on moto's S3 server on loopback with a person photo and a text file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests._servers import moto_s3

HUMAN = "google__cameratrapai/test_data/human.jpg"
#: The bucket's secret key: a test asserts it reaches no log.
S3_SECRET_KEY = "s3-Secr3t-Key-0a1b2c3d"
#: The photo's key in the bucket (a space in it, as cards have).
HUMAN_KEY = "card/Serengeti/cam01/human shot.jpg"


class RecordingIngest:
    """The real ingest flow, counting its runs."""

    def __init__(self) -> None:
        from flows.ingest import ingest

        self.flow = ingest
        self.calls: list[list[str]] = []

    def __call__(self, **kw: Any) -> Any:
        self.calls.append(list(kw["paths"]))
        return self.flow(**kw)


@contextmanager
def traps_bucket(camtrap_dir: Path) -> Iterator[list[str]]:
    """A bucket 'traps' on moto's S3 server on loopback (the AWS_* variables pointing at it),
    holding the person photo at HUMAN_KEY and a text file; yields the server's request log."""
    import fsspec

    lines: list[str] = []

    class _Log(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = _Log()
    with moto_s3(S3_SECRET_KEY):
        logging.getLogger("werkzeug").addHandler(handler)
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("traps")
        fs.pipe(f"traps/{HUMAN_KEY}", (camtrap_dir / HUMAN).read_bytes())
        fs.pipe("traps/card/Serengeti/cam01/notes.txt", b"battery 80%")
        try:
            yield lines
        finally:
            logging.getLogger("werkzeug").removeHandler(handler)
