"""``trapflow export ...``, ``trapflow import mdjson`` and ``import camtrapdp``: field formats
out and in (flows/formats/, docs/formats.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import (
    LayoutOpt,
    SitesOpt,
    WarehouseOpt,
    console,
    err,
    export_app,
    fail,
    fail_from,
    import_app,
    user_errors,
)
from flows.settings import load_settings


@export_app.command("mdjson")
def export_mdjson(
    out: Annotated[Path, typer.Option("--out", "-o", help="The .json file to write.")],
    warehouse: WarehouseOpt = None,
    site: SitesOpt = None,
    detector: Annotated[
        str | None,
        typer.Option(help="Export every category from this model (e.g. an imported run)."),
    ] = None,
) -> None:
    """MegaDetector batch output (format 1.5) for Timelapse, AddaxAI and MD's tools."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse)
    if not settings.warehouse_path.exists():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        with console.status("creating marts.fct_detector_boxes (dbt) ..."):
            _exports.ensure_detector_boxes(settings)
    except user_errors() as exc:
        raise fail_from(exc) from None
    try:
        results = _exports.mdjson_results(
            settings.warehouse_path,
            animal_model=settings.animal_model,
            general_model=settings.general_model,
            typical_threshold=settings.detection_thresholds["animal"],
            conservative_threshold=settings.inference_floor,
            site=site or (),
            layout=settings.layout,
            detector=detector,
        )
    except _exports.ExportError as exc:
        raise fail(str(exc)) from None
    _exports.write_mdjson(out, results)
    images = results["images"]
    failed = sum(1 for i in images if i.get("failure"))
    boxes = sum(len(i["detections"] or []) for i in images)
    console.print(f"{out}: {len(images)} images ({failed} failures), {boxes} detections")


@export_app.command("camtrapdp")
def export_camtrapdp(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the package.")],
    warehouse: WarehouseOpt = None,
    title: Annotated[str, typer.Option(help="Package and project title.")] = (
        "trapflow camera-trap data"
    ),
    contributor: Annotated[str, typer.Option(help="Contact named in the package.")] = (
        "trapflow user"
    ),
    missing_location: Annotated[
        str | None,
        typer.Option(help="'LAT,LON,UNCERTAINTY_M' for deployments without coordinates."),
    ] = None,
) -> None:
    """A Camtrap DP 1.0 package (datapackage.json + deployments/media/observations.csv)."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse)
    fallback = None
    if missing_location:
        try:
            lat, lon, unc = (float(v) for v in missing_location.split(","))
        except ValueError:
            raise fail(
                f"--missing-location {missing_location!r}: give 'LAT,LON,UNCERTAINTY_M', "
                "e.g. '-1.95,34.68,20000'"
            ) from None
        fallback = (lat, lon, unc)
    try:
        result = _exports.export_camtrapdp(
            settings.warehouse_path, out, animal_model=settings.animal_model,
            general_model=settings.general_model, sensitive=settings.sensitive_species,
            grid_km=settings.sensitive_grid_km, title=title, contributor=contributor,
            missing_location=fallback,
        )  # fmt: skip
    except _exports.ExportError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{out}: {result.deployments} deployments, {result.media} media, "
        f"{result.observations_media} media-level and {result.observations_event} event-level "
        f"observations; {len(result.generalised)} deployments with generalised coordinates"
    )
    if result.timestamp_issues:
        err.print(
            f"[yellow]warning:[/] {len(result.timestamp_issues)} deployments have no UTC offset "
            "(timestampIssues=true, written as +00:00): add utc_offset in deployments.csv"
        )
    if result.no_coordinates:
        err.print(
            f"[yellow]warning:[/] {len(result.no_coordinates)} deployments have no coordinates, "
            "which Camtrap DP requires: add them in deployments.csv or pass --missing-location"
        )


@export_app.command("csv")
def export_csv(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one CSV per mart.")],
    warehouse: WarehouseOpt = None,
) -> None:
    """Every mart as a CSV file (header row, ISO dates, empty cell = null); coordinates at
    sites that recorded a sensitive species generalised."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse)
    try:
        paths = _exports.export_mart_csvs(
            settings.warehouse_path, out, sensitive=settings.sensitive_species,
            grid_km=settings.sensitive_grid_km, thresholds=settings.detection_thresholds,
            classification_threshold=settings.classification_threshold,
        )  # fmt: skip
    except _exports.ExportError as exc:
        raise fail(str(exc)) from None
    console.print(f"{out}: {len(paths)} CSV files ({', '.join(p.name for p in paths)})")


@export_app.command("timeline")
def export_timeline(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON file to write.")],
    warehouse: WarehouseOpt = None,
) -> None:
    """Each clip's behaviour timeline (segments and per-frame labels) as JSON."""
    from flows.formats.common import ExportError
    from flows.formats.timeline import export_timeline as _export

    settings = load_settings(warehouse=warehouse)
    try:
        n = _export(settings.warehouse_path, out)
    except ExportError as exc:
        raise fail(str(exc)) from None
    console.print(f"{out}: {n} clip timelines")


@export_app.command("detection-history")
def export_detection_history(
    species: Annotated[str, typer.Option("--species", help="The species (a label of the marts).")],
    occasion_days: Annotated[
        int, typer.Option("--occasion-days", help="Days per occasion (camtrapR occasionLength).")
    ] = 7,
    day1: Annotated[
        str,
        typer.Option(
            "--day1",
            help="Occasions start at: 'survey' (the first setup of all stations; camtrapR's "
            "default), 'station' (each station's setup) or a date YYYY-MM-DD.",
        ),
    ] = "survey",
    by: Annotated[
        str, typer.Option("--by", help="Rows per 'station' (site) or per 'camera'.")
    ] = "station",
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Folder for the two CSV files.")
    ] = Path("."),
    warehouse: WarehouseOpt = None,
) -> None:
    """camtrapR detectionHistory(): a detection matrix (1/0/NA) and an effort matrix
    (trap-days per occasion) per station for occupancy models (docs/formats.md)."""
    from flows.formats import detection_history as _dh
    from flows.formats.common import ExportError

    settings = load_settings(warehouse=warehouse)
    if not settings.warehouse_path.exists():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        result = _dh.detection_history(
            settings.warehouse_path, species, occasion_days, day1=day1, by=by
        )
    except ExportError as exc:
        raise fail(str(exc)) from None
    except user_errors() as exc:
        raise fail_from(exc) from None
    paths = _dh.write_detection_history(result, output_dir)
    console.print(
        f"{species}: {len(result.stations)} {by}s x {result.occasions} occasions of "
        f"{occasion_days} days (day1={result.day1}), {result.detections} with detections; "
        f"{', '.join(str(p) for p in paths)}"
    )
    if result.left_out:
        err.print(
            f"[yellow]note:[/] {result.left_out} of {result.records} records fall in no "
            "occasion (before day1, or no camera working that occasion)"
        )


@export_app.command("images")
def export_images(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the copies.")],
    warehouse: WarehouseOpt = None,
    site: SitesOpt = None,
    species: Annotated[
        list[str] | None,
        typer.Option("--species", help="Only images with this label counted (repeatable)."),
    ] = None,
    blur: Annotated[
        bool, typer.Option("--blur/--no-blur", help="Blur every person box (default).")
    ] = True,
    strip_gps: Annotated[
        bool,
        typer.Option(
            "--strip-gps/--keep-gps",
            help="Remove EXIF GPS (default); kept GPS is still removed at sensitive sites.",
        ),
    ] = True,
) -> None:
    """Copies of images to hand on: people blurred, GPS stripped, manifest.csv with SHA-256s
    (flows/formats/images.py, docs/formats.md). The originals are never modified."""
    from flows.formats import exports as _exports
    from flows.formats import images as _image_export

    settings = load_settings(warehouse=warehouse)
    try:
        result = _image_export.export_images(
            settings.warehouse_path, out, sites=site or (), species=species or (), blur=blur,
            strip_gps=strip_gps, sensitive=settings.sensitive_species,
            thresholds=settings.detection_thresholds,
            classification_threshold=settings.classification_threshold,
            max_image_pixels=settings.max_image_pixels,
        )  # fmt: skip
    except _exports.ExportError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{out}: {result.exported} images ({result.blurred} with people blurred, "
        f"{result.gps_stripped} with GPS stripped, {result.copied} unchanged copies); "
        f"SHA-256s in {result.manifest}"
    )
    if result.sensitive_gps_stripped:
        err.print(
            f"[yellow]note:[/] GPS stripped from {result.sensitive_gps_stripped} images at sites "
            "that recorded a sensitive species, although --keep-gps was given"
        )
    if result.skipped:
        from rich.markup import escape

        path, why = result.skipped[0]
        err.print(
            f"[yellow]warning:[/] {len(result.skipped)} skipped (first: {escape(path)}: "
            f"{escape(why)})",
            highlight=False,
        )


@import_app.command("mdjson")
def import_mdjson(
    file: Annotated[Path, typer.Argument(help="MegaDetector batch output .json.")],
    source: Annotated[
        str, typer.Option("--source", "-s", help="Folder the file's paths are relative to.")
    ],
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
) -> None:
    """Load results MegaDetector (or another tool) already produced for the images in DIR."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse, layout=layout)
    try:
        result = _exports.import_mdjson(
            settings.warehouse_path, file, source, layout=settings.layout,
            max_image_pixels=settings.max_image_pixels,
        )  # fmt: skip
    except _exports.MdJsonError as exc:
        raise fail(str(exc)) from None
    except user_errors() as exc:
        raise fail_from(exc) from None
    console.print(
        f"imported {file}: {result.images} entries, {result.media_added} new images, "
        f"{result.detections_added} detections, {result.classifications_added} "
        f"classifications, {result.failures} failures (run {result.run_id})"
    )
    if result.missing:
        err.print(
            f"[yellow]warning:[/] {len(result.missing)} files not found under {source} "
            f"(first: {result.missing[0]}): is --source the folder the JSON's paths start from?"
        )
    if result.skipped_categories:
        err.print(
            f"[yellow]warning:[/] skipped detections of unknown categories or without a box: "
            f"{dict(result.skipped_categories)}"
        )
    if settings.build_marts and result.detections_added:
        console.print("run 'trapflow marts' to count them (only the configured detectors count)")


@import_app.command("camtrapdp")
def import_camtrapdp(
    directory: Annotated[
        Path, typer.Argument(help="Folder of the package (datapackage.json and its CSVs).")
    ],
    warehouse: WarehouseOpt = None,
    build: Annotated[bool, typer.Option(help="Rebuild the marts afterwards (dbt build).")] = True,
) -> None:
    """A Camtrap DP 1.0 package: deployments, media (without their files) and observations
    as human labels. Validated offline first: an invalid package loads nothing; re-importing
    the same package adds nothing."""
    from flows.formats.camtrapdp_import import import_camtrapdp as _import
    from flows.store import open_store
    from flows.store.dbt import run_dbt

    settings = load_settings(warehouse=warehouse)
    try:
        with console.status(f"validating and loading {directory} ..."):
            result = _import(
                settings.warehouse_path, directory, standards_dir=settings.standards_dir
            )
    except user_errors() as exc:
        raise fail_from(exc) from None
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
    console.print(
        f"{result.package}: {result.deployments} deployments, {result.media} media "
        f"({result.media_added} new), {result.observations} observations "
        f"({result.observations_used} loaded as {result.labels_added} new labels of "
        f"{result.media_labelled} media; skipped: {skipped or 'none'})"
        + ("" if result.changed else "; nothing changed")
    )
    if not build:
        return
    try:
        seconds = run_dbt(settings, "build", store=open_store(settings)).seconds
    except user_errors() as exc:
        raise fail_from(exc) from None
    console.print(f"dbt build passed in {seconds:.1f} s ({settings.warehouse_path})")
