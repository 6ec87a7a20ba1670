"""``trapflow train-now`` and ``trapflow embed``: the Label page's loop from the command line
(flows/train_now.py, flows/pipeline/embed.py, docs/training.md)."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import WarehouseOpt, app, console, err, fail, fail_from, user_errors
from flows.settings import load_settings


def _watch(path: Path, stop: threading.Event) -> None:
    """A progress bar from the flow's progress file, until ``stop``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("train now", total=None)
        while not stop.wait(0.3):
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            step, done, total = state.get("step"), state.get("done", 0), state.get("total")
            bar.update(task, description=f"train now: {step}", completed=done, total=total or None)


@app.command("train-now")
def train_now_cmd(
    warehouse: WarehouseOpt = None,
    progress_file: Annotated[
        Path | None,
        typer.Option(help="Also write progress here as JSON (the Label page reads it)."),
    ] = None,
) -> None:
    """Train a species head on the labels people gave (Label page, reviews, imported labels),
    from cached crop embeddings; register it, re-label the stored photos, rebuild the marts."""
    from flows.cli._server import start_temporary_server
    from flows.train_now import train_now_flow

    settings = load_settings(warehouse=warehouse)
    if not settings.warehouse_path.is_file():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    start_temporary_server()
    with tempfile.TemporaryDirectory() as tmp:
        path = progress_file or Path(tmp) / "progress.json"
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(path, stop), daemon=True)
        watcher.start()
        try:
            done = train_now_flow(str(settings.warehouse_path), str(path))
        except user_errors() as exc:
            raise fail_from(exc) from None
        finally:
            stop.set()
            watcher.join(timeout=2)
    if done["trained"]:
        console.print(
            f"{done['model_id']}: held-out accuracy {done['accuracy']:.2f} (baseline "
            f"{done['baseline_accuracy']:.2f}) on {done['n_validation']} crops, trained on "
            f"{done['n_train']}"
        )
    else:
        console.print(f"{done['model_id']} was trained on exactly these labels: not trained again")
    console.print(
        f"{done['relabelled_photos']} photos re-labelled ({done['from_cache']} from cached "
        f"embeddings), {done['embedded_photos']} embedded first; marts rebuilt in "
        f"{done['marts_s']:.1f} s; {done['seconds']:.1f} s in all"
    )


@app.command("embed")
def embed_cmd(warehouse: WarehouseOpt = None) -> None:
    """Cache the crop embeddings of every stored photo (no re-detection), so the Label page
    can group similar crops and "train now" need not read the photos."""
    from flows.cli.labels import _build, on_stored_photos
    from flows.pipeline.embed import embed_stored

    settings = load_settings(warehouse=warehouse)
    result = on_stored_photos(settings, "embed", embed_stored)
    console.print(
        f"{result.embedder}: {result.crops} crops of {result.photos} photos embedded, "
        f"{result.sketched} older ones sketched, in {result.seconds:.1f} s"
    )
    for path, reason in result.unreadable[:5]:
        err.print(f"[yellow]warning:[/] {path}: cannot be read again ({reason}); left out")
    if settings.build_marts and (result.crops or result.sketched):
        _build(settings)  # the Label page groups the crops of the marts' last build
