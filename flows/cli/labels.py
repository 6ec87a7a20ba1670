"""``trapflow import labels`` and ``trapflow labels conflicts``: human labels from where
ecologists keep them (flows/pipeline/labels.py, docs/training.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from flows.cli._app import WarehouseOpt, app, console, err, fail, fail_from, import_app, user_errors
from flows.settings import Settings, load_settings

T = TypeVar("T")

labels_app = typer.Typer(help="Human labels that came with the photos or from a file.")
app.add_typer(labels_app, name="labels")


def _build(settings: Settings) -> None:
    from flows.store import open_store
    from flows.store.dbt import DbtBuildError, run_dbt

    try:
        result = run_dbt(settings, "build", store=open_store(settings))
    except DbtBuildError as exc:
        raise fail(str(exc)) from None
    console.print(f"marts rebuilt in {result.seconds:.1f} s: the labels count now")


@import_app.command("labels")
def import_labels(
    file: Annotated[Path, typer.Argument(help="Timelapse CSV export, or a CSV with file,label.")],
    source: Annotated[
        str | None,
        typer.Option("--source", "-s", help="Only photos of this source folder (or URL)."),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="The label column (default: label, species, ...).")
    ] = None,
    file_column: Annotated[
        str | None, typer.Option(help="The file column (default: file, filename, path, ...).")
    ] = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Labels a person gave elsewhere (Timelapse, a spreadsheet), as human labels of the photos
    the warehouse holds; they win over the models at once. Re-importing adds nothing."""
    from flows.pipeline.labels import import_label_csv
    from flows.store import open_store

    settings = load_settings(warehouse=warehouse)
    store = open_store(settings)
    if not store.exists():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        result = import_label_csv(
            store, file, source=source, label_column=label_column, file_column=file_column
        )
    except user_errors() as exc:
        raise fail_from(exc) from None
    console.print(
        f"imported {file} ({result.format}): {result.rows_read} labelled rows, "
        f"{result.media_labelled} photos, {result.labels_added} new labels"
    )
    if result.unmatched:
        line, path = result.unmatched[0]
        err.print(
            f"[yellow]warning:[/] {len(result.unmatched)} rows name files the warehouse does not "
            f"hold (first: line {line}, {path!r}); paths must be relative to the folder the run "
            "polled (--source), as the dashboard shows them",
            markup=True,
        )
    if settings.build_marts and result.labels_added:
        _build(settings)
    _print_conflicts(settings)


def _print_conflicts(settings: Settings, *, every: bool = False) -> int:
    from flows.store import warehouse as _warehouse

    if not settings.warehouse_path.is_file() or not _warehouse.has_marts(settings.warehouse_path):
        return 0
    with _warehouse.connect(settings.warehouse_path, read_only=True) as con:
        try:
            found = con.execute(
                "select file_path, labels, found_in from marts.fct_label_conflicts "
                "where not is_resolved_by_review order by file_path"
            ).fetchall()
        except Exception:  # marts built before this mart existed
            return 0
    if not found:
        return 0
    err.print(
        f"[yellow]warning:[/] {len(found)} photos have labels that disagree; none of them "
        "counts until you label the whole image on the dashboard's Review page "
        "('trapflow labels conflicts' lists them)"
    )
    if every:
        table = Table("file", "labels", "from")
        for row in found:
            table.add_row(*(str(v) for v in row))
        console.print(table)
    return len(found)


@labels_app.command("conflicts")
def conflicts(warehouse: WarehouseOpt = None) -> None:
    """Photos whose imported labels disagree (folder, keywords, CSV), as of the last build."""
    settings = load_settings(warehouse=warehouse)
    if _print_conflicts(settings, every=True) == 0:
        console.print("no photo has labels that disagree")


@app.command("relabel")
def relabel_cmd(warehouse: WarehouseOpt = None) -> None:
    """Classify the photos already stored with the species head (the one trained last, or
    species_model), from their stored boxes: no re-detection. Then rebuild the marts."""
    relabel_and_build(load_settings(warehouse=warehouse))


def on_stored_photos(settings: Settings, description: str, job: Callable[..., T]) -> T:
    """``job(settings, store, progress=...)`` on the warehouse's stored photos, with a progress
    bar; no warehouse, or a user's mistake, is one line (relabel, embed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from flows.store import open_store

    store = open_store(settings)
    if not store.exists():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task(description, total=None)
            return job(
                settings, store, progress=lambda d, t: bar.update(task, completed=d, total=t)
            )
    except user_errors() as exc:
        raise fail_from(exc) from None


def relabel_and_build(settings: Settings) -> None:
    from flows.pipeline.relabel import relabel

    result = on_stored_photos(settings, "re-label", relabel)
    console.print(
        f"{result.model_id}: {result.photos} photos re-labelled ({result.from_cache} from cached "
        f"embeddings, not read again), {result.classifications} labels in {result.seconds:.1f} s"
    )
    for path, reason in result.unreadable[:5]:
        err.print(f"[yellow]warning:[/] {path}: cannot be read again ({reason}); left as it was")
    if settings.build_marts and result.classifications:
        _build(settings)
