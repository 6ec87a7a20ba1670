"""``trapflow annotate`` and ``trapflow train``: an annotated clip, your own species head."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli._app import (
    app,
    console,
    err,
    fail,
    fail_from,
    user_errors,
)
from flows.settings import load_settings


@app.command()
def annotate(
    clip: Annotated[Path, typer.Argument(help="Video clip (.mp4, .avi, .mov, ...).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output MP4 (default CLIP.annotated.mp4).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Frames per second sampled (default video_sample_rate).")
    ] = None,
    blur: Annotated[
        bool, typer.Option("--blur/--no-blur", help="Blur people (--no-blur: rangers only).")
    ] = True,
) -> None:
    """Write an annotated copy of a clip: boxes and labels on every sampled frame (H.264 MP4),
    people blurred unless --no-blur."""
    from flows.pipeline import process as _process
    from flows.pipeline import video as _video
    from models_ml.video import VideoError, encoder

    if not clip.is_file():
        raise fail(f"{clip} is not a file: pass the path of a video clip")
    settings = load_settings()
    target = out or clip.with_name(f"{clip.stem}.annotated.mp4")
    try:
        model_dir = _process.ensure_pipeline_models(settings)
        ctx = _process.batch_context(settings, model_dir, str(clip.parent), "annotate")
        result, written = _video.annotate_clip(
            str(clip), target, ctx.ensemble, dict(settings.detection_thresholds),
            settings.inference_floor, rate=settings.video_sample_rate if rate is None else rate,
            blur_people=blur,
        )  # fmt: skip
    except VideoError as exc:
        raise fail(f"{clip}: {exc}") from exc
    except user_errors() as exc:
        raise fail_from(exc) from None
    roll = _video.rollup(
        result.frames, dict(settings.detection_thresholds), _video.counting_models(ctx.ensemble)
    )
    seen = ", ".join(
        f"{cat} max {v['max_confidence']:.2f} MaxN {int(v['max_n'])}" for cat, v in roll.items()
    )
    console.print(
        f"wrote {target} ({written} annotated frames, {encoder()}); {seen or 'nothing detected'}"
    )


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Folder with one sub-folder of images per species."),
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV with file,label columns.")] = None,
    warehouse: Annotated[
        Path | None,
        typer.Option("--warehouse", "-w", help="Also use the dashboard's reviewed labels."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default <model_dir>/trained).")
    ] = None,
    name: Annotated[str, typer.Option(help="Model name; re-training adds a version.")] = (
        "species_head"
    ),
    min_per_class: Annotated[int, typer.Option(help="Classes with fewer are left out.")] = 5,
    max_per_class: Annotated[int, typer.Option(help="Larger classes are subsampled.")] = 1000,
    val_fraction: Annotated[float, typer.Option(help="Held out per class for evaluation.")] = 0.25,
    min_box_confidence: Annotated[float, typer.Option(help="Best animal box at least.")] = 0.2,
    whole_frame: Annotated[
        bool,
        typer.Option(
            "--whole-frame/--boxes-only", help="Without an animal box: use the whole frame."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed (split, subsampling).")] = 0,
) -> None:
    """Train a species head on your labelled images, evaluate it, and register it.

    See docs/training.md. The new head becomes the species model of the next run unless
    species_model is set.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from flows.pipeline.training import gather_images, run_training
    from models_ml.training import TrainingConfig, TrainingDataError

    settings = load_settings()
    cfg = TrainingConfig(
        min_per_class=min_per_class, max_per_class=max_per_class, val_fraction=val_fraction,
        seed=seed, min_box_confidence=min_box_confidence, whole_frame_fallback=whole_frame,
    )  # fmt: skip
    try:
        items = gather_images(data, csv, warehouse)
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("detect + embed", total=len(items))

            def tick(done: int, total: int, _name: str) -> None:
                bar.update(task, completed=done, total=total)

            result = run_training(settings, items, out=out, name=name, config=cfg, progress=tick)
    except TrainingDataError as exc:
        raise fail(str(exc)) from None
    except user_errors() as exc:
        raise fail_from(exc) from None
    ev = result.evaluation
    table = Table("label", "precision", "recall", "F1", "support", title=result.model_id)
    for c in ev.per_class:
        table.add_row(
            c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)
        )
    console.print(table)
    console.print(
        f"held-out accuracy [bold]{ev.accuracy:.3f}[/] vs majority baseline "
        f"{ev.baseline_accuracy:.3f} ('{ev.baseline_label}'); {ev.n_train} train / "
        f"{ev.n_validation} held-out images; {result.cache_hits} embeddings from the cache"
    )
    if result.excluded_classes:
        left = ", ".join(f"{k} ({n})" for k, n in result.excluded_classes.items())
        console.print(f"left out (fewer than {min_per_class} images): {left}")
    if result.skipped:
        console.print(f"{len(result.skipped)} image(s) skipped; reasons in report.md")
    console.print(
        f"report: {result.out_dir / 'report.md'}, confusion matrix: "
        f"{result.out_dir / 'confusion.png'}\nregistered as [bold]{result.model_id}[/]; "
        "the next run uses it unless species_model is set"
    )
    if ev.accuracy <= ev.baseline_accuracy:
        err.print(
            "[yellow]warning:[/] the head does not beat the majority baseline; add images "
            "before relying on it (species_model = '' switches the species stage off)"
        )
