"""``trapflow marts``, ``summary`` and ``config``: what the warehouse holds and how it is built."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from rich.table import Table

from flows.cli._app import (
    LakeDataOpt,
    LakeOpt,
    WarehouseOpt,
    app,
    console,
    fail,
)
from flows.settings import Settings, load_settings


@app.command("marts")
def marts_cmd(
    warehouse: WarehouseOpt = None, lake: LakeOpt = None, lake_data_path: LakeDataOpt = None
) -> None:
    """Rebuild the dbt marts (dbt build: models and tests); --lake: on one snapshot of it."""
    from flows.store import open_store
    from flows.store.dbt import DbtBuildError, run_dbt

    settings = load_settings(warehouse=warehouse, lake=lake, lake_data_path=lake_data_path)
    store = open_store(settings)
    if not store.exists():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        result = run_dbt(settings, "build", store=store)
    except DbtBuildError as exc:
        raise fail(str(exc)) from None
    console.print(f"dbt build passed in {result.seconds:.1f} s ({settings.warehouse_path})")


@app.command()
def summary(warehouse: WarehouseOpt = None) -> None:
    """What the warehouse holds: images, detections, sites, days, quarantine."""
    settings = load_settings(warehouse=warehouse)
    print_summary(settings, None)


@app.command()
def config() -> None:
    """Show the effective settings and where each can be set."""
    settings = load_settings()
    table = Table("setting", "value", "env", title="trapflow settings")
    for name in Settings.model_fields:
        table.add_row(name, str(getattr(settings, name)), f"TRAPFLOW_{name.upper()}")
    console.print(table)
    console.print(f"warehouse file: {settings.warehouse_path}\nmodel folder: {settings.model_path}")


def print_summary(settings: Settings, run: Any) -> None:
    from flows.pipeline.summary import summarize

    s = summarize(settings.warehouse_path)
    if run is not None:
        st = run.stats
        console.rule(f"[bold]trapflow run {run.run_id[:8]}")
        console.print(
            f"source     {run.source_uri}: {run.files_listed} media files, {run.files_new} new "
            f"or changed ({run.other_files} other files ignored)"
        )
        console.print(
            f"this run   {st.images} images processed, {st.duplicates} duplicates, "
            f"{st.quarantined} quarantined, {st.warnings} with warnings, {st.detections} boxes"
        )
        if run.duration_s:
            console.print(
                f"time       {run.duration_s:.1f} s = {run.images_per_s:.2f} images/s end to end "
                f"(list {run.list_s:.1f} s, read+decode {st.read_s:.1f} s, "
                f"detect {st.detect_s:.1f} s, load {st.load_s:.1f} s, marts {run.marts_s:.1f} s)"
            )
    console.rule("[bold]warehouse")
    sources = ", ".join(f"{k}: {v}" for k, v in s.timestamp_sources.items()) or "-"
    console.print(f"images     {s.images} (timestamps from {sources})")
    if s.marts_built:
        for category, images, boxes in s.categories:
            console.print(f"{category:<10} {images} images, {boxes} boxes above threshold")
        labels = ", ".join(f"{lab} ({n})" for _c, lab, n in s.labels)
        console.print(f"labels     {labels or '-'}")
        console.print(
            f"sites      {s.sites} sites, {s.cameras} cameras, {s.days} days "
            f"({s.first_day} .. {s.last_day})"
        )
    else:
        console.print("marts      not built yet: run 'trapflow marts'")
    if s.human_labels or s.label_conflicts:
        by = ", ".join(f"{k} {n}" for k, n in s.human_labels.items())
        console.print(
            f"people     photos labelled by people: {by or 'none'}"
            + (
                f"; {s.label_conflicts} whose imported labels disagree (counted by neither: "
                "'trapflow labels conflicts')"
                if s.label_conflicts
                else ""
            ),
            markup=False,
        )
    skipped = sum(n for _r, a, n in s.quarantined if a == "skipped")
    console.print(
        f"quarantine {skipped} files skipped"
        + (
            ": " + ", ".join(f"{r} {n}" for r, a, n in s.quarantined if a == "skipped")
            if skipped
            else ""
        )
    )
    warned = [(r, n) for r, a, n in s.quarantined if a != "skipped"]
    if warned:
        console.print(
            "warnings   "
            + ", ".join(f"{r} {n}" for r, n in warned)
            + " (processed; see raw.quarantine)"
        )
    console.print(f"warehouse  {s.warehouse}", markup=False)
    # commands to copy: quoted for the shell (a path with spaces or brackets stays one word)
    wh = shlex.quote(str(s.warehouse))
    console.print(f"dashboard  trapflow dashboard --warehouse {wh}", markup=False)
    home = shlex.quote(os.environ.get("PREFECT_HOME", str(Path("~/.prefect").expanduser())))
    console.print(
        f"Prefect UI PREFECT_HOME={home} prefect server start  ->  http://127.0.0.1:4200",
        markup=False,
    )
