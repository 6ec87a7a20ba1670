"""Glue for ``trapflow train``: where the labelled images come from, and which models to use.

The work is :func:`models_ml.training.train_head`; this module gathers the images (a folder
per species, a file,label CSV, and/or the labels reviewers gave in the dashboard) and makes
sure the detector and the embedder are present and verified.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from flows.pipeline.models import ensure_models
from flows.settings import Settings
from flows.store import warehouse as _warehouse
from models_ml import training
from models_ml.training import LabelledImage, TrainingConfig, TrainingDataError, TrainResult

#: One label per image from the reviews in force (dbt decides which review wins).
_REVIEWED = """
    select m.source_uri, m.file_path, r.label, m.site_id, r.label_origin
    from (
        select media_id, label, label_origin
        from marts.fct_label_reviews
        where is_latest and label is not null and not is_false_positive
          and coalesce(category, 'animal') = 'animal'
        qualify row_number() over (
            partition by media_id order by reviewed_at desc, label_id desc) = 1
    ) r
    join marts.dim_media m using (media_id)
    order by m.file_path
"""


def _has_reviews(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        row = con.execute("select count(*) from review.labels").fetchone()
    except duckdb.CatalogException:
        return False
    return bool(row and row[0])


def reviewed_labels(warehouse: Path) -> list[LabelledImage]:
    """Images people labelled: on the dashboard (origin ``review``) and the labels imported
    with the photos (``import:folder``, ``import:xmp``, ``import:csv``...), local files only.

    The reviews in force are dbt's (``marts.fct_label_reviews.is_latest``: the latest review
    of each box, and of each whole image); of those, the ones naming an animal species that
    are not false positives give the image its label (the latest when several boxes were
    labelled). Images whose file is no longer where it was ingested are left out.
    """
    if not Path(warehouse).is_file():
        raise TrainingDataError(f"warehouse {warehouse} not found; check --warehouse")
    try:
        with _warehouse.connect(Path(warehouse), read_only=True) as con:
            if not _warehouse.has_mart(con, "fct_label_reviews"):
                if _has_reviews(con):
                    raise TrainingDataError(
                        f"the warehouse {warehouse} has reviews but no marts yet: run "
                        "'trapflow marts' first, then train"
                    )
                return []  # no review table yet: nothing reviewed
            rows = con.execute(_REVIEWED).fetchall()
    except duckdb.CatalogException:
        return []
    items = []
    for source_uri, file_path, label, site_id, origin in rows:
        if "://" in str(source_uri) and not str(source_uri).startswith("file://"):
            continue  # s3:// and friends: train from a local copy instead
        root = Path(str(source_uri).removeprefix("file://"))
        path = root / str(file_path)
        if path.is_file():
            kind = "review" if origin in (None, "dashboard") else f"import:{origin}"
            items.append(LabelledImage(path, str(label).strip(), kind, str(site_id)))
    return items


def gather_images(
    data: Path | None,
    csv: Path | None,
    warehouse: Path | None,
    *,
    label_column: str | None = None,
) -> list[LabelledImage]:
    """Everything labelled from the given sources (at least one)."""
    if data is None and csv is None and warehouse is None:
        raise TrainingDataError(
            "nothing to train on: give --data DIR (one sub-folder per species), --csv FILE "
            "(file,label columns) and/or --warehouse (the dashboard's reviewed labels)"
        )
    items: list[LabelledImage] = []
    if data is not None:
        items += training.images_from_folders(data)
    if csv is not None:
        items += training.images_from_csv(csv, label_column=label_column)
    if warehouse is not None:
        reviewed = reviewed_labels(warehouse)
        if not reviewed and data is None and csv is None:
            raise TrainingDataError(
                f"no reviewed species labels in {warehouse}; label images in the dashboard "
                "first, or give --data / --csv"
            )
        items += reviewed
    return items


def crop_embedder(settings: Settings) -> training.CropEmbedder:
    """The animal detector + embedder training uses, pulled and verified first."""
    from flows.pipeline.process import configured_manifest

    manifest = configured_manifest(settings)
    builtin = [
        n for n in (settings.animal_model, training.EMBEDDER) if manifest[n].location is None
    ]
    ensure_models(settings, builtin)
    return training.CropEmbedder(
        settings.model_path, manifest, animal_model=settings.animal_model,
        intra_op_threads=settings.intra_op_threads or None,
    )  # fmt: skip


def run_training(
    settings: Settings,
    items: list[LabelledImage],
    *,
    out: Path | None = None,
    name: str = training.DEFAULT_HEAD_NAME,
    config: TrainingConfig | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    test_items: list[LabelledImage] | None = None,
) -> TrainResult:
    """Train, export and register a head; it becomes the default ``species_model``."""
    model_dir = settings.model_path
    embedder = crop_embedder(settings)
    return training.train_head(
        items,
        model_dir=model_dir,
        out_root=(out or model_dir / "trained").expanduser().absolute(),
        name=name,
        config=config,
        embedder=embedder,
        progress=progress,
        test_items=test_items or [],
    )


def run_behaviour_training(
    settings: Settings,
    clips_dir: Path | None,
    clips_csv: Path | None,
    *,
    out: Path | None = None,
    name: str = "behaviour_head",
    config: TrainingConfig | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> TrainResult:
    """Train and register a behaviour head on labelled clips, frames sampled as a run does
    (``video_sample_rate``); it becomes the default ``behaviour_model``."""
    from models_ml import behaviour

    clips = []
    if clips_dir is not None:
        clips += behaviour.clips_from_folders(clips_dir)
    if clips_csv is not None:
        clips += behaviour.clips_from_csv(clips_csv)
    model_dir = settings.model_path
    embedder = crop_embedder(settings)
    return behaviour.train_behaviour_head(
        clips, model_dir=model_dir, out_root=(out or model_dir / "trained").expanduser().absolute(),
        embedder=embedder, name=name, config=config, rate=settings.video_sample_rate or 1.0,
        progress=progress,
    )  # fmt: skip
