"""s3:// sources through fsspec/s3fs, against a real S3-compatible server on loopback (moto)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import moto_s3
from tests.conftest import query

pytestmark = pytest.mark.slow

PHOTOS = [
    "google__cameratrapai/test_data/human.jpg",
    "agentmorris__MegaDetector/images/idaho-camera-traps.jpg",
    "google__cameratrapai/test_data/african_elephants.jpg",
]


class _Requests(logging.Handler):
    """Counts the object GETs the server answers (werkzeug's access log)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def object_gets(self) -> int:
        return sum('"GET /traps/card/' in line for line in self.lines)


@pytest.fixture
def s3_server() -> Iterator[tuple[str, _Requests]]:
    with moto_s3() as endpoint:
        requests = _Requests()
        logging.getLogger("werkzeug").addHandler(requests)
        try:
            yield endpoint, requests
        finally:
            logging.getLogger("werkzeug").removeHandler(requests)


def test_s3_source_is_listed_incrementally(
    s3_server, prefect_harness, trapflow_env, camtrap_dir: Path, tmp_path
):
    import fsspec

    from flows.ingest import ingest

    _endpoint, requests = s3_server
    fs = fsspec.filesystem("s3")
    fs.mkdir("traps")
    for i, rel in enumerate(PHOTOS[:2]):
        fs.pipe(f"traps/card/site-{i}/{Path(rel).name}", (camtrap_dir / rel).read_bytes())
    wh = tmp_path / "w.duckdb"
    first = ingest(source="s3://traps/card", warehouse=str(wh), build=False)
    assert (first.files_listed, first.stats.images) == (2, 2)
    assert first.source_uri == "s3://traps/card"
    rows = sorted(query(wh, "select file_path, site_id, timestamp_source from raw.media"))
    assert rows == [("site-0/human.jpg", "site-0", "exif"),
                    ("site-1/idaho-camera-traps.jpg", "site-1", "exif")]  # fmt: skip
    gets_before = requests.object_gets()

    fs.pipe("traps/card/site-2/african_elephants.jpg", (camtrap_dir / PHOTOS[2]).read_bytes())
    fs.invalidate_cache()
    second = ingest(source="s3://traps/card", warehouse=str(wh), build=False)
    assert (second.files_listed, second.files_new, second.stats.images) == (3, 1, 1)
    assert requests.object_gets() - gets_before == 1  # only the new key was read
    assert query(wh, "select count(*) from raw.media")[0][0] == 3
