"""``trapflow run`` and ``trapflow serve``: the ingest flow, once, polling, or served."""

from __future__ import annotations

import time
from typing import Annotated

import duckdb
import typer

from flows.cli._app import (
    LakeDataOpt,
    LakeOpt,
    LayoutOpt,
    SourceOpt,
    WarehouseOpt,
    app,
    console,
    fail,
    fail_from,
    user_errors,
)
from flows.cli._preflight import check_run
from flows.cli._server import ensure_prefect_server, start_temporary_server, ui_url
from flows.settings import load_settings


@app.command()
def run(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
    once: Annotated[
        bool, typer.Option("--once/--watch", help="Process what is new and exit, or keep polling.")
    ] = True,
    interval: Annotated[int | None, typer.Option(help="Seconds between polls (--watch).")] = None,
    marts: Annotated[bool, typer.Option("--marts/--no-marts", help="Run dbt build after.")] = True,
    batch_size: Annotated[int | None, typer.Option(help="Images per batch.")] = None,
    lake: LakeOpt = None,
    lake_data_path: LakeDataOpt = None,
    full_listing: Annotated[
        bool,
        typer.Option(
            "--full-listing",
            help="List the whole source (a date layout's older months too) on the first poll.",
        ),
    ] = False,
) -> None:
    """Process everything new under the source: EXIF, detections, warehouse, marts."""
    settings = load_settings(
        source=source,
        warehouse=warehouse,
        layout=layout,
        build_marts=marts,
        batch_size=batch_size,
        interval=interval,
        lake=lake,
        lake_data_path=lake_data_path,
    )
    check_run(settings)  # a user's mistake: one line, before any flow run or server
    start_temporary_server()  # when Prefect needs one: it stops with this process, -9 too
    from flows.cli.warehouse import print_summary
    from flows.ingest import ingest

    while True:
        try:
            summary = ingest(
                source=settings.source, warehouse=str(settings.warehouse_path),
                layout=settings.layout, build=settings.build_marts,
                batch_size=settings.batch_size, lake=settings.lake,
                lake_data_path=settings.lake_data_path,
                full_listing=full_listing or None,
            )  # fmt: skip
            full_listing = False  # --watch: the later polls follow full_listing_every_n
        except user_errors() as exc:
            raise fail_from(exc) from None
        except duckdb.IOException as exc:  # disk full, permissions: the open batch rolled back
            raise fail(
                f"could not write to the warehouse {settings.warehouse_path} ({exc}). The batch "
                "being loaded was rolled back and earlier batches are kept; free disk space or "
                "fix permissions, then run again."
            ) from None
        print_summary(settings, summary)
        if once:
            return
        time.sleep(settings.interval)


@app.command()
def serve(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
    interval: Annotated[int | None, typer.Option(help="Seconds between polls.")] = None,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "trapflow-ingest",
    prefect_port: Annotated[
        int, typer.Option(help="Port of the local Prefect server started when none is set.")
    ] = 4200,
) -> None:
    """Keep polling as a Prefect served flow (a deployment with an interval schedule).

    Schedules need a real Prefect API: PREFECT_API_URL when set, else a server already on
    127.0.0.1:PORT, else one started here (and stopped with this command).
    """
    settings = load_settings(source=source, warehouse=warehouse, layout=layout, interval=interval)
    check_run(settings)
    server = ensure_prefect_server(prefect_port)
    from flows.ingest import ingest

    console.print(
        f"Serving [bold]ingest/{name}[/] every {settings.interval} s on {settings.source}; "
        f"Ctrl-C stops it. Runs show in the Prefect UI at {ui_url()}."
    )
    try:
        ingest.serve(
            name=name,
            interval=settings.interval,
            limit=1,  # one poll at a time: a slow poll delays the next, never overlaps it
            parameters={
                "source": settings.source,
                "warehouse": str(settings.warehouse_path),
                "layout": settings.layout,
            },
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
