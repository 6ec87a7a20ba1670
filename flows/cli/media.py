"""``trapflow annotate`` and ``trapflow train``: an annotated clip, your own species head."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

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
from flows.settings import Settings, load_settings


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
    people blurred unless --no-blur; with a behaviour head (behaviour_model), each frame's
    behaviour in a banner."""
    from flows.pipeline import inference as _inference
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
        behaviours: list[str] = []

        def verdict(frame: Any, dets: list[Any]) -> str:
            row = _inference.frame_behaviour(ctx, frame, dets, "")
            behaviours.append(str(row["label"]))
            return f"{row['model_name']}: {row['label']} {row['probability']:.2f}"

        result, written = _video.annotate_clip(
            str(clip), target, ctx.ensemble, dict(settings.detection_thresholds),
            settings.inference_floor, rate=settings.video_sample_rate if rate is None else rate,
            blur_people=blur, label_frame=verdict if ctx.behaviour is not None else None,
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
    if behaviours:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(Counter(behaviours).items()))
        console.print(f"behaviour per frame: {counts}")


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Folder with one sub-folder of images per species."),
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV with file,label columns.")] = None,
    label_column: Annotated[
        str | None, typer.Option(help="The CSV's label column (default: label, species, ...).")
    ] = None,
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
    min_box_confidence: Annotated[
        float | None,
        typer.Option(
            help="Crop a box this sure, else the whole frame (classification_min_confidence)."
        ),
    ] = None,
    split: Annotated[
        str, typer.Option(help="Keep whole on one side of the split: burst, site or image.")
    ] = "burst",
    test_data: Annotated[
        Path | None,
        typer.Option("--test-data", help="Unseen photos (a folder per species) to report on."),
    ] = None,
    test_csv: Annotated[
        Path | None, typer.Option("--test-csv", help="Unseen photos as a file,label CSV.")
    ] = None,
    whole_frame: Annotated[
        bool,
        typer.Option(
            "--whole-frame/--boxes-only", help="Without an animal box: use the whole frame."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed (split, subsampling).")] = 0,
    trained_sites_only: Annotated[
        bool,
        typer.Option(
            "--trained-sites-only/--any-site",
            help="Label only photos of the sites the labelled photos came from (when known).",
        ),
    ] = True,
    relabel: Annotated[
        bool,
        typer.Option(
            "--relabel", help="Then classify the --warehouse's stored photos (no re-detection)."
        ),
    ] = False,
    clips: Annotated[
        Path | None,
        typer.Option("--clips", help="A behaviour head: one sub-folder of clips per label."),
    ] = None,
    clips_csv: Annotated[
        Path | None,
        typer.Option("--clips-csv", help="A behaviour head: CSV clip,start_s,end_s,label."),
    ] = None,
    if_labelled: Annotated[
        bool,
        typer.Option(
            "--if-labelled", help="When the labels cannot give a head yet, say why and exit 0."
        ),
    ] = False,
) -> None:
    """Train a species head on your labelled images, evaluate it, and register it.

    See docs/training.md. The new head becomes the species model of the next run unless
    species_model is set; --relabel also labels the photos the --warehouse already holds.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from flows.pipeline.training import gather_images, run_training
    from models_ml.training import AlreadyTrained, TrainingConfig, TrainingDataError

    settings = load_settings()
    cfg = TrainingConfig(
        min_per_class=min_per_class, max_per_class=max_per_class, val_fraction=val_fraction,
        seed=seed, whole_frame_fallback=whole_frame, split=split,
        only_trained_sites=trained_sites_only,
        min_box_confidence=(
            settings.classification_min_confidence
            if min_box_confidence is None else min_box_confidence
        ),
        burst_gap_s=settings.independence_minutes * 60.0,  # the marts' independent events
    )  # fmt: skip
    if clips is not None or clips_csv is not None:
        _train_behaviour(settings, clips, clips_csv, out, cfg)
        return
    try:
        items = gather_images(data, csv, warehouse, label_column=label_column)
        tests = gather_images(test_data, test_csv, None) if test_data or test_csv else []
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("detect + embed", total=len(items))

            def tick(done: int, total: int, _name: str) -> None:
                bar.update(task, completed=done, total=total)

            result = run_training(
                settings, items, out=out, name=name, config=cfg, progress=tick, test_items=tests
            )
    except AlreadyTrained as done:
        console.print(
            f"{done.model_id} was trained on exactly these labelled photos and settings: "
            "nothing new to train on"
        )
        _relabel(relabel, warehouse)
        return
    except TrainingDataError as exc:
        if if_labelled:
            console.print(f"no species head trained yet: {exc}")
            return
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
        f"held-out accuracy [bold]{ev.accuracy:.3f}[/] (split by {result.split}) vs majority "
        f"baseline {ev.baseline_accuracy:.3f} ('{ev.baseline_label}'); {ev.n_train} train / "
        f"{ev.n_validation} held-out images; {result.cache_hits} embeddings from the cache"
    )
    if result.unseen is not None:
        u = result.unseen
        console.print(
            f"unseen photos: accuracy [bold]{u.accuracy:.3f}[/] on {u.n_validation} photos vs "
            f"baseline {u.baseline_accuracy:.3f}; every one classified by the species stage's rule"
        )
    if result.untested_classes:
        console.print(
            f"not held out (a single {result.split}): {', '.join(result.untested_classes)}"
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
    _relabel(relabel, warehouse)


def _relabel(relabel: bool, warehouse: Path | None) -> None:
    if not relabel:
        return
    if warehouse is None:
        raise fail("--relabel needs --warehouse: the warehouse whose photos to re-label")
    from flows.cli.labels import relabel_and_build

    relabel_and_build(load_settings(warehouse=warehouse))  # the head just registered


def _train_behaviour(
    settings: Settings, clips: Path | None, clips_csv: Path | None, out: Path | None, cfg: Any
) -> None:
    from flows.pipeline.training import run_behaviour_training
    from models_ml.training import TrainingDataError

    try:
        result = run_behaviour_training(settings, clips, clips_csv, out=out, config=cfg)
    except TrainingDataError as exc:
        raise fail(str(exc)) from None
    except user_errors() as exc:
        raise fail_from(exc) from None
    ev = result.evaluation
    console.print(
        f"{result.model_id}: {result.embedded} labelled frames; held-out clips' frame accuracy "
        f"[bold]{ev.accuracy:.3f}[/] vs majority baseline {ev.baseline_accuracy:.3f}; labels "
        f"{', '.join(result.labels)}\nregistered as the behaviour model of the next run "
        f"(report: {result.out_dir / 'report.md'})"
    )
    if result.untested_classes:
        console.print(f"not held out (a single clip): {', '.join(result.untested_classes)}")
