""" "Train now": a species head from the labels people gave, on the crops the warehouse cached.

The Label page's button (and ``trapflow train-now``) runs :func:`train_now`, as the Prefect
flow ``flows/train_now.py`` does:

1. **embed**: labelled photos whose crops have no cached embedding are embedded once
   (:func:`flows.pipeline.embed.embed_stored`; the photos are read, nothing is re-detected);
2. **fit**: the rows of ``marts.fct_training_crops`` (dbt decides which labels are in force
   and which crop each names) are fitted by the same code as ``trapflow train``
   (:func:`models_ml.training.fit_examples`: balance, split keeping each burst whole, fit,
   held-out report, ONNX export, registry); a head trained on exactly these crops and labels
   is not trained again;
3. **report**: the held-out figures go to ``training.head_reports`` (the Label page shows
   the new head beside the previous one);
4. **relabel**: every stored photo is classified by the new head from its cached embeddings
   (:func:`flows.pipeline.relabel.relabel`; photos not cached are read once);
5. **marts**: ``dbt build``, so the Population page counts the new labels.

Progress goes to a callback ``(step, done, total)``. Plain functions, no Prefect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from flows.errors import UserError
from flows.pipeline.embed import EmbedResult, embed_stored, embedder_id
from flows.pipeline.relabel import RelabelResult, relabel
from flows.settings import Settings, load_settings
from flows.store import Store
from flows.store.warehouse import has_mart
from models_ml import training
from models_ml.training import AlreadyTrained, Examples, TrainingConfig, TrainResult

__all__ = ["STEPS", "TrainNowResult", "record_report", "train_now", "training_examples"]

#: The steps, in order, as the progress callback names them.
STEPS = ("embed", "fit", "relabel", "marts")

Progress = Callable[[str, int, int], None]


@dataclass
class TrainNowResult:
    model_id: str
    trained: TrainResult | None  # None: the head in force was trained on exactly these labels
    embedded: EmbedResult
    relabelled: RelabelResult | None = None
    marts_s: float = 0.0
    seconds: float = 0.0


def _config(settings: Settings) -> TrainingConfig:
    return TrainingConfig(
        min_box_confidence=settings.classification_min_confidence,
        burst_gap_s=settings.independence_minutes * 60.0,
    )


def _marts_ready(store: Store) -> bool:
    with store.reading() as con:
        return has_mart(con, "fct_training_crops")


def training_examples(store: Store, embedder: str, split: str = "burst") -> Examples:
    """The labelled crops of ``marts.fct_training_crops`` cached by ``embedder``."""
    with store.reading() as con:
        rows = con.execute(
            "select media_id, crop_key, site_id, burst_id, label, embedding "
            "from marts.fct_training_crops where embedder = ? order by media_id, crop_key",
            [embedder],
        ).fetchall()
    if not rows:
        return Examples(np.zeros((0, 0), np.float32), [], [], [], [], [])
    groups = {
        "burst": [f"burst:{r[3]}" for r in rows],
        "site": [f"site:{r[2]}" for r in rows],
        "image": [f"image:{r[0]}" for r in rows],
    }[split]
    return Examples(
        x=np.asarray([r[5] for r in rows], np.float32),
        labels=[str(r[4]) for r in rows],
        keys=[f"{r[0]}/{r[1]}" for r in rows],
        groups=groups,
        sites=[str(r[2]) if r[2] else None for r in rows],
        names=[f"{r[0]}/{r[1]}" for r in rows],
    )


def record_report(store: Store, result: TrainResult, embedder: str) -> None:
    """One row in training.head_reports for a head just registered."""
    ev = result.evaluation
    with store.writing() as con:
        con.execute(
            "insert or replace into training.head_reports (model_id, task, embedder, "
            "trained_at, split, n_train, n_validation, accuracy, baseline_accuracy, macro_f1, "
            "labels, per_class, confusion, excluded_classes, report_path) "
            "values (?, 'species', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                result.model_id, embedder, datetime.now(UTC).replace(tzinfo=None),
                result.split, ev.n_train, ev.n_validation, ev.accuracy, ev.baseline_accuracy,
                ev.macro_f1, list(ev.labels), json.dumps([asdict(c) for c in ev.per_class]),
                json.dumps(ev.confusion), json.dumps(result.excluded_classes),
                str(result.out_dir / "report.md"),
            ],
        )  # fmt: skip


def train_now(
    settings: Settings,
    store: Store,
    *,
    progress: Progress | None = None,
    name: str = training.DEFAULT_HEAD_NAME,
    build: Callable[[Settings], float] | None = None,
) -> TrainNowResult:
    """Embed what is missing, fit, register, record, re-label, rebuild (see the module)."""
    t0 = time.perf_counter()
    say: Progress = progress or (lambda step, done, total: None)
    if not store.exists() or not _marts_ready(store):
        raise UserError(
            f"no marts in {settings.warehouse_path} yet: run 'trapflow run' (or 'trapflow "
            "marts'), label some photos, then train"
        )
    embedder = embedder_id(settings)
    with store.reading() as con:
        todo = [
            str(r[0])
            for r in con.execute(
                "select distinct media_id from marts.fct_training_crops where embedder is null"
            ).fetchall()
        ]
    say("embed", 0, len(todo))
    embedded = embed_stored(
        settings, store, todo, progress=lambda d, t: say("embed", d, t)
    ) if todo else EmbedResult(embedder)  # fmt: skip

    say("fit", 0, 1)
    cfg = _config(settings)
    examples = training_examples(store, embedder, cfg.split)
    if not examples.labels:
        raise UserError(
            "no labelled photos to train on: label some on the Label page (or import labels: "
            "'trapflow import labels'), then train"
        )
    out_root = settings.model_path / "trained"
    try:
        trained: TrainResult | None = training.fit_examples(
            examples, cfg=cfg, model_dir=settings.model_path, out_root=out_root, name=name,
            embedder_id=embedder, detector_id="stored boxes", fingerprint_key=embedder,
            report_extra={"source": f"warehouse {settings.warehouse_path}"},
        )  # fmt: skip
        model_id = trained.model_id if trained else ""
    except AlreadyTrained as done:
        trained, model_id = None, done.model_id
    except training.TrainingDataError as exc:
        raise UserError(str(exc)) from None
    if trained is not None:
        record_report(store, trained, embedder)
    say("fit", 1, 1)

    # the head just registered (also when species_model names another: this is what was asked)
    fresh = load_settings(warehouse=settings.warehouse_path, species_model=name)
    relabelled = relabel(fresh, store, progress=lambda d, t: say("relabel", d, t))
    say("marts", 0, 1)
    marts_s = build(fresh) if build is not None else _build(fresh, store)
    say("marts", 1, 1)
    return TrainNowResult(
        model_id=model_id, trained=trained, embedded=embedded, relabelled=relabelled,
        marts_s=marts_s, seconds=time.perf_counter() - t0,
    )  # fmt: skip


def _build(settings: Settings, store: Store) -> float:
    from flows.store.dbt import run_dbt

    return float(run_dbt(settings, "build", store=store).seconds)


def summary(result: TrainNowResult) -> dict[str, Any]:
    """What a run of train now did, as the progress file and the flow's result say it."""
    ev = result.trained.evaluation if result.trained else None
    return {
        "model_id": result.model_id,
        "trained": result.trained is not None,
        "accuracy": ev.accuracy if ev else None,
        "baseline_accuracy": ev.baseline_accuracy if ev else None,
        "n_train": ev.n_train if ev else None,
        "n_validation": ev.n_validation if ev else None,
        "embedded_photos": result.embedded.photos,
        "relabelled_photos": result.relabelled.photos if result.relabelled else 0,
        "from_cache": result.relabelled.from_cache if result.relabelled else 0,
        "marts_s": round(result.marts_s, 2),
        "seconds": round(result.seconds, 2),
    }
