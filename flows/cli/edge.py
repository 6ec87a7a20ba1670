"""``trapflow edge`` (the command of ``flows/edge/cli.py``, which the edge install runs as
``trapflow-edge`` without Prefect) and ``trapflow import edge-manifests SOURCE``."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli._app import LayoutOpt, WarehouseOpt, app, console, import_app
from flows.edge.cli import edge
from flows.settings import load_settings

app.command("edge")(edge)


@import_app.command("edge-manifests")
def import_edge_manifests(
    source: Annotated[str, typer.Argument(help="The edge's upload folder or s3:// URL.")],
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
) -> None:
    """Load the manifests an edge box uploaded: the blanks it kept on its card count in
    effort. Then `trapflow run --source SOURCE` ingests the photos it uploaded."""
    from flows.formats.edge_import import import_edge_manifests as _import

    settings = load_settings(warehouse=warehouse, layout=layout)
    result = _import(settings.warehouse_path, source, layout=settings.layout)
    console.print(
        f"imported {result.manifests} edge manifests: {result.photos} photos, "
        f"{result.kept_on_card} kept on the card ({result.media_added} new blanks), "
        f"{result.uploaded} uploaded ({result.awaiting_ingest} not ingested yet: "
        f"trapflow run --source {source} --once)",
        highlight=False,
    )
