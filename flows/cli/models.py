"""``trapflow models list | pull | verify``: the model registry."""

from __future__ import annotations

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
