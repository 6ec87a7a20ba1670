"""Central ingest of what an edge box sent (its manifests, then its photos) gives the per-image
counts of an ingest of the whole card, and the blanks it kept count in effort."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.edge.run import run_edge
from flows.formats.edge_import import import_edge_manifests
from flows.store.warehouse import open_file

pytestmark = pytest.mark.slow

PER_IMAGE = (
    "select media_id, site_id, camera_id, has_animal, has_person, has_vehicle, n_animals, "
    "n_persons, n_vehicles from marts.dim_media order by media_id"
)
# 'misc' holds a blank without an EXIF time: the card's ingest reads its info bar (OCR), the
# edge does not, so its manifest row has the file's time (docs/edge.md, "Limits").
EFFORT = (
    "select site_id, camera_id, day, effort from marts.fct_camera_operation "
    "where effort is not null and site_id <> 'misc' order by all"
)


def _marts(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with open_file(warehouse) as con:
        return con.execute(sql).fetchall()


def test_manifests_and_photos_equal_an_ingest_of_the_card(
    prefect_harness: None,
    trapflow_env: dict[str, str],
    edge_settings: Callable[..., Any],
    card: Path,
    tmp_path: Path,
) -> None:
    from flows.ingest import ingest

    upload = tmp_path / "up"
    upload.mkdir()
    report = run_edge(edge_settings())
    assert report.pending == 0 and report.kept > 0

    whole = tmp_path / "card.duckdb"
    ingest(source=str(card), warehouse=str(whole))
    central = tmp_path / "central.duckdb"
    first = import_edge_manifests(central, str(upload))
    assert first.kept_on_card == report.kept and first.media_added == report.kept
    assert first.awaiting_ingest == first.uploaded == report.queued
    ingest(source=str(upload), warehouse=str(central))
    again = import_edge_manifests(central, str(upload))  # re-importing adds nothing
    assert again.media_added == 0 and again.awaiting_ingest == 0

    assert _marts(central, PER_IMAGE) == _marts(whole, PER_IMAGE)
    effort = _marts(central, EFFORT)
    assert effort == _marts(whole, EFFORT)
    assert {site for site, *_ in effort} == {"StationA", "StationB", "gallery"}
    # StationA's photos are all blanks kept on the card: its effort comes from the manifest
    assert sum(e for site, _c, _d, e in effort if site == "StationA") > 0
    kept = _marts(
        central,
        "select count(*) from marts.dim_media join raw.media m using (media_id) "
        "join raw.runs r on r.run_id = m.run_id where r.source_uri like '%/_manifests/%'",
    )
    assert kept == [(report.kept,)]
