"""``trapflow models list | pull | verify | quantize``: the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli._app import (
    console,
    fail,
    fail_from,
    models_app,
    user_errors,
)
from flows.settings import load_settings


@models_app.command("list")
def models_list() -> None:
    """Every model in the registry and whether a verified copy is here."""
    from models_ml import registry

    settings = load_settings()
    table = Table("model", "kind", "version", "size", "licence", "here", "from")
    for spec in registry.load_manifest().values():
        ok = registry.verify(spec, settings.model_path).ok
        table.add_row(
            spec.name, spec.kind, spec.version, f"{spec.size / 1e6:.1f} MB", spec.licence,
            "[green]verified[/]" if ok else "[yellow]missing[/]",
            spec.url or "mirror",
        )  # fmt: skip
    console.print(table)
    console.print(f"model folder: {settings.model_path}; mirror: {settings.model_mirror or '-'}")


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to pull (default: all).")
    ] = None,
) -> None:
    """Copy or download models from the mirror, checking every SHA-256."""
    from models_ml import registry

    settings = load_settings()
    manifest = registry.load_manifest()
    wanted = names or list(manifest)
    unknown = [n for n in wanted if n not in manifest]
    if unknown:
        raise fail(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(manifest)}")
    if not settings.model_mirror:
        raise fail("no model mirror: set TRAPFLOW_MODEL_MIRROR to a folder or http(s) URL")
    for name in wanted:
        spec = manifest[name]
        try:
            path = registry.pull(spec, settings.model_path, settings.model_mirror)
        except user_errors() as exc:
            raise fail_from(exc) from None
        console.print(f"[green]verified[/] {spec.model_id} -> {path}")


@models_app.command("verify")
def models_verify() -> None:
    """Re-check the SHA-256 of every model present; exit 1 if any is wrong."""
    from models_ml import registry

    settings = load_settings()
    bad = 0
    for spec in registry.load_manifest().values():
        result = registry.verify(spec, settings.model_path)
        console.print(
            f"{'[green]ok[/]' if result.ok else '[red]FAIL[/]'} {spec.name}: {result.detail}"
        )
        bad += not result.ok
    if bad:
        raise typer.Exit(1)


@models_app.command("quantize")
def models_quantize(
    name: Annotated[str, typer.Argument(help="The FP32 detector to quantise.")] = (
        "mdlite_yolox_tiny"
    ),
    photos: Annotated[
        Path | None,
        typer.Option(
            help="Folder of your photos; the calibration ones are picked by a hash "
            "of each path (default: the configured source folder)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Calibrate on at most N photos (0: all).")] = 0,
    quant_format: Annotated[str, typer.Option("--format", help="qdq or qoperator.")] = "qdq",
    per_channel: Annotated[bool, typer.Option(help="Per-channel weight scales.")] = True,
    exclude: Annotated[
        str, typer.Option(help="Left in float: tail (box decoding), tail+convs, tail+stem, none.")
    ] = "tail",
    calibrate: Annotated[str, typer.Option(help="percentile, minmax or entropy.")] = "percentile",
) -> None:
    """Make an INT8 copy of a detector here (onnxruntime static quantisation, calibrated on
    your photos) and register it as ``<name>_int8`` (animal_model = "<name>_int8")."""
    from flows.pipeline.models import ensure_models
    from models_ml import quantize, registry

    settings = load_settings()
    manifest = registry.load_manifest()
    if name not in manifest or manifest[name].kind != "detector":
        detectors = [n for n, s in manifest.items() if s.kind == "detector"]
        raise fail(f"unknown detector {name!r}; quantise one of: {', '.join(detectors)}", 2)
    folder = photos if photos is not None else Path(settings.source).expanduser()
    if not folder.is_dir():
        raise fail(f"no photo folder at {folder}: pass --photos DIR", 2)
    chosen = quantize.calibration_photos(folder, limit)
    if not chosen:
        one_in = quantize.CALIBRATION_ONE_IN
        raise fail(f"no calibration photo under {folder} (1 in {one_in} calibrates)", 2)
    errors: tuple[type[BaseException], ...] = (ValueError, *user_errors())
    try:
        model_dir = ensure_models(settings, [name])
        made = quantize.quantize_detector(
            manifest[name], model_dir, chosen, quant_format=quant_format,
            per_channel=per_channel, exclude=exclude, calibrate=calibrate,
        )  # fmt: skip
        registered = quantize.register_int8(model_dir, manifest[name], made)
    except errors as exc:
        raise fail_from(exc) from None
    console.print(
        f"[green]quantised[/] {name} on {made.calibration_images} photos -> {made.path} "
        f"(sha256 {made.sha256}); registered as {registered}: set animal_model = "
        f'"{registered}" to use it'
    )
