"""``trapflow import camtrapdp``: the TDWG example package (tests/data/camtrapdp/tdwg-example,
byte for byte from tdwg/camtrap-dp example/) into a real warehouse through the CLI, a real
``dbt build`` once for the module, the figures checked against the package's own files; an
export of the imported warehouse validates again; broken packages load nothing."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.store import ids
from tests.conftest import query
from tests.flows.formats.test_exports import _validate_package

EXAMPLE = Path(__file__).parents[2] / "data" / "camtrapdp" / "tdwg-example"
RAW_TABLES = ("deployments", "media", "media_labels", "media_files", "runs")


def _rows(name: str, folder: Path = EXAMPLE) -> list[dict[str, str]]:
    with (folder / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _counts(warehouse: Path) -> dict[str, int]:
    return {t: query(warehouse, f"select count(*) from raw.{t}")[0][0] for t in RAW_TABLES}


def _import(
    warehouse: Path, package: Path, shared_dir: Path, *extra: str
) -> Any:  # click.testing.Result
    env = {
        "TRAPFLOW_STANDARDS_DIR": str(shared_dir / "standards"),
        "TRAPFLOW_HOME": str(warehouse.parent / "home"),
    }
    return CliRunner().invoke(
        app, ["import", "camtrapdp", str(package), "-w", str(warehouse), *extra], env=env
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> dict[str, Any]:
    """The example imported once, marts built (dbt build)."""
    warehouse = tmp_path_factory.mktemp("camtrapdp") / "warehouse.duckdb"
    result = _import(warehouse, EXAMPLE, shared_dir)
    assert result.exit_code == 0, result.output
    return {"warehouse": warehouse, "output": result.output}


def _package_key() -> str:
    return str(json.loads((EXAMPLE / "datapackage.json").read_text(encoding="utf-8"))["id"])


def _usable(observation: dict[str, str]) -> bool:
    return observation["observationType"] in ("animal", "human", "vehicle", "blank")


def test_the_tdwg_example_loads(imported: dict[str, Any]) -> None:
    warehouse = imported["warehouse"]
    deployments, media = _rows("deployments.csv"), _rows("media.csv")
    observations = _rows("observations.csv")
    # the example's own figures
    assert (len(deployments), len(media), len(observations)) == (4, 423, 549)
    assert query(warehouse, "select count(*) from raw.deployments")[0][0] == len(deployments)
    assert query(warehouse, "select count(*) from raw.media")[0][0] == len(media)
    assert f"{len(observations)} observations" in imported["output"]

    # ids come from the package's mediaID; site and camera from the deployment
    key = _package_key()
    stored = dict(query(warehouse, "select media_id, site_id || '/' || camera_id from raw.media"))
    place = {d["deploymentID"]: f"{d['locationID']}/{d['cameraID']}" for d in deployments}
    for m in media:
        assert stored[ids.camtrap_media_id(key, m["mediaID"])] == place[m["deploymentID"]]
    # the timestamp's offset is kept, the wall time is the camera's
    first = media[0]
    at, offset = query(
        warehouse,
        "select captured_at, utc_offset from raw.media where media_id = ?",
        [ids.camtrap_media_id(key, first["mediaID"])],
    )[0]
    assert at.isoformat() + offset == first["timestamp"]

    # every media with an observation of its own that names something is labelled
    media_level = [o for o in observations if o["mediaID"] and _usable(o)]
    labelled = {o["mediaID"] for o in media_level}
    assert len(labelled) == 412  # 423 less 11 whose only observation is 'unknown'
    assert query(warehouse, "select count(distinct media_id) from raw.media_labels")[0][0] == len(
        labelled
    )
    # per species: the (media, species) pairs and the summed counts of the file
    animals = [o for o in media_level if o["observationType"] == "animal"]
    pairs: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for o in animals:
        pairs[o["scientificName"]].add(o["mediaID"])
        counts[o["scientificName"]] += int(o["count"])
    stored_species = {
        label: (n, total)
        for label, n, total in query(
            warehouse,
            'select label, count(*), sum("count") from raw.media_labels '
            "where category = 'animal' group by label",
        )
    }
    assert stored_species == {s: (len(pairs[s]), counts[s]) for s in pairs}
    assert len(stored_species) == 9
    assert stored_species["Anas platyrhynchos"] == (157, 437)
    assert Counter(o["scientificName"] for o in animals)["Anas platyrhynchos"] == 207
    other = dict(
        query(
            warehouse,
            "select category, count(*) from raw.media_labels where category != 'animal' group by 1",
        )
    )
    by_type = Counter(o["observationType"] for o in media_level)
    assert other == {
        "person": by_type["human"],
        "vehicle": by_type["vehicle"],
        "blank": by_type["blank"],
    }


def test_the_marts_build_on_it(imported: dict[str, Any]) -> None:
    warehouse = imported["warehouse"]
    assert "dbt build passed" in imported["output"]
    deployments = {d["deploymentID"]: d for d in _rows("deployments.csv")}
    marts = {
        d: (site, nights)
        for d, site, nights in query(
            warehouse, "select deployment_id, site_id, trap_nights from marts.dim_deployments"
        )
    }
    assert set(marts) == set(deployments)
    assert all(
        site == deployments[d]["locationID"] and nights > 0 for d, (site, nights) in marts.items()
    )
    # effort is the deployment's span, as Camtrap DP readers (camtraptor) compute it: a listed
    # deployment worked from start to end; the silence between its photos is not downtime
    for d, (_, nights) in marts.items():
        start = datetime.fromisoformat(deployments[d]["deploymentStart"])
        end = datetime.fromisoformat(deployments[d]["deploymentEnd"])
        assert nights == pytest.approx((end - start).total_seconds() / 86400, abs=1e-6), d
    sites = {
        s for (s,) in query(warehouse, "select distinct site_id from marts.fct_daily_population")
    }
    assert sites == {d["locationID"] for d in deployments.values()}
    assert (
        query(warehouse, "select count(*) from marts.dim_media where deployment_id is not null")[0][
            0
        ]
        == 423
    )
    species = {
        s
        for (s,) in query(
            warehouse, "select distinct label from marts.fct_events where category = 'animal'"
        )
    }
    assert species == {
        o["scientificName"] for o in _rows("observations.csv") if o["observationType"] == "animal"
    }
    # counts reach the marts: the 9 juveniles and their mother in one photo count 10
    most = query(
        warehouse, "select max(max_count) from marts.fct_events where label = 'Anas platyrhynchos'"
    )[0][0]
    assert most == 10


def test_reimport_adds_nothing(imported: dict[str, Any], shared_dir: Path) -> None:
    warehouse = imported["warehouse"]
    before = _counts(warehouse)
    result = _import(warehouse, EXAMPLE, shared_dir, "--no-build")
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output and "(0 new)" in result.output
    assert _counts(warehouse) == before


def test_the_export_of_the_import_validates(
    imported: dict[str, Any], tmp_path: Path, shared_dir: Path
) -> None:
    out = tmp_path / "dp"
    result = CliRunner().invoke(
        app, ["export", "camtrapdp", "--out", str(out), "-w", str(imported["warehouse"])]
    )
    assert result.exit_code == 0, result.output
    report = _validate_package(out)
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    assert {d["deploymentID"] for d in _rows("deployments.csv", out)} == {
        d["deploymentID"] for d in _rows("deployments.csv")
    }
    assert len(_rows("media.csv", out)) == 423
    # and it comes back in: the same animals with the same counts
    again = tmp_path / "again.duckdb"
    result = _import(again, out, shared_dir, "--no-build")
    assert result.exit_code == 0, result.output
    species = (
        'select label, count(*), sum("count") from raw.media_labels '
        "where category = 'animal' group by label order by label"
    )
    assert query(again, species) == query(imported["warehouse"], species)


def _copy(tmp_path: Path) -> Path:
    package = tmp_path / "package"
    shutil.copytree(EXAMPLE, package)
    return package


def _rewrite(path: Path, change: Any) -> None:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, records = list(reader.fieldnames or []), list(reader)
    records = change(records)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)


def test_event_observations_label_the_media_of_their_event(
    tmp_path: Path, shared_dir: Path
) -> None:
    """Without media-level observations at deployment 577b543a, its event-level ones label
    each of its media within [eventStart, eventEnd], with the event's count."""
    package = _copy(tmp_path)
    dep = "577b543a"
    _rewrite(
        package / "observations.csv",
        lambda rs: [r for r in rs if r["deploymentID"] != dep or not r["mediaID"]],
    )
    warehouse = tmp_path / "w.duckdb"
    result = _import(warehouse, package, shared_dir, "--no-build")
    assert result.exit_code == 0, result.output

    def utc(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

    media = [
        (m["mediaID"], utc(m["timestamp"])) for m in _rows("media.csv") if m["deploymentID"] == dep
    ]
    expected: dict[tuple[str, str], int] = {}
    for o in _rows("observations.csv"):
        if o["deploymentID"] == dep and not o["mediaID"] and o["observationType"] == "animal":
            for mid, at in media:
                if utc(o["eventStart"]) <= at <= utc(o["eventEnd"]):
                    key = (ids.camtrap_media_id(_package_key(), mid), o["scientificName"])
                    expected[key] = expected.get(key, 0) + int(o["count"])
    assert len(expected) == 50  # the ten media of each of its five animal events
    stored = {
        (m, label): n
        for m, label, n in query(
            warehouse,
            'select l.media_id, l.label, l."count" from raw.media_labels l '
            "join raw.media m using (media_id) where m.site_id = 'ff1535c0' "
            "and l.category = 'animal'",
        )
    }
    assert stored == expected
    # the time-lapse frames outside every event stay unlabelled
    timelapse = ids.camtrap_media_id(_package_key(), "b42ddc97")
    assert (
        query(warehouse, "select count(*) from raw.media_labels where media_id = ?", [timelapse])[
            0
        ][0]
        == 0
    )


def _missing_resource(package: Path) -> str:
    path = package / "datapackage.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["resources"] = [r for r in doc["resources"] if r["name"] != "observations"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    return "resource observations missing"


def _bad_enum(package: Path) -> str:
    def change(rs: list[dict[str, str]]) -> list[dict[str, str]]:
        rs[4]["observationType"] = "dinosaur"
        return rs

    _rewrite(package / "observations.csv", change)
    return "observations.csv row 6 field observationType"


def _unknown_deployment(package: Path) -> str:
    def change(rs: list[dict[str, str]]) -> list[dict[str, str]]:
        rs[0]["deploymentID"] = "nowhere"
        return rs

    _rewrite(package / "observations.csv", change)
    return "observations.csv row 2"


def _not_csv(package: Path) -> str:
    path = package / "datapackage.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    for r in doc["resources"]:
        if r["name"] == "media":
            r["path"], r["format"] = "media.xlsx", "xlsx"
    (package / "media.xlsx").write_bytes(b"PK\x03\x04 not a table")
    path.write_text(json.dumps(doc), encoding="utf-8")
    return "resource media is 'media.xlsx'"


@pytest.mark.parametrize("breakage", [_missing_resource, _bad_enum, _unknown_deployment, _not_csv])
def test_a_broken_package_is_one_line_and_loads_nothing(
    breakage: Any, tmp_path: Path, shared_dir: Path
) -> None:
    package = _copy(tmp_path)
    named = breakage(package)
    warehouse = tmp_path / "w.duckdb"
    result = _import(warehouse, package, shared_dir)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert named in lines[0] and "nothing was loaded" in lines[0]
    assert not warehouse.exists() or all(n == 0 for n in _counts(warehouse).values())


def test_a_bad_package_after_a_good_one_changes_nothing(
    imported: dict[str, Any], tmp_path: Path, shared_dir: Path
) -> None:
    """Validation comes first: a package with a bad row leaves the warehouse as it was."""
    warehouse = imported["warehouse"]
    before = _counts(warehouse)
    package = _copy(tmp_path)
    _bad_enum(package)
    result = _import(warehouse, package, shared_dir, "--no-build")
    assert result.exit_code == 2
    assert _counts(warehouse) == before


def test_the_dashboard_shows_the_imported_package(
    imported: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages render on the marts of the import (no photo files: only marts are read)."""
    from streamlit.testing.v1 import AppTest

    from dashboard import queries

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy2(imported["warehouse"], copy)
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(copy))
    queries.st.cache_data.clear()
    app = Path(__file__).parents[3] / "dashboard" / "streamlit_app.py"
    at = AppTest.from_file(str(app), default_timeout=60)
    at.run()
    charts = {}
    for page in ("app_pages/population.py", "app_pages/sites.py", "app_pages/health.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        charts[page] = len(at.get("arrow_vega_lite_chart")) + len(at.get("vega_lite_chart"))
    assert charts["app_pages/population.py"] > 0, charts


def test_validation_never_reaches_the_network(
    shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package names the published schema URLs; the local copies are used instead."""
    import socket

    from flows.formats.camtrapdp_import import CamtrapDPImportError, validate_package

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert "https://" in (EXAMPLE / "datapackage.json").read_text(encoding="utf-8")
    package = validate_package(EXAMPLE, shared_dir / "standards")
    assert set(package.files) == {"deployments", "media", "observations"}
    with pytest.raises(CamtrapDPImportError, match="TRAPFLOW_STANDARDS_DIR"):
        validate_package(EXAMPLE, tmp_path / "no-standards")
