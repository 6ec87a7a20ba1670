"""``trapflow import stations`` and ``trapflow import timeshifts``: the station table (camtrapR
CTtable or deployments.csv) and camtrapR's timeShiftTable, loaded whole or not at all, then
only the marts that depend on them rebuilt (docs/effort.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli._app import (
    WarehouseOpt,
    console,
    err,
    fail,
    fail_from,
    import_app,
    user_errors,
)
from flows.settings import Settings, load_settings

#: What a station table or a time shift changes: the deployments, their problems, the shifted
#: times, and everything downstream of them (dbt's graph selects it).
STATION_SELECTION = (
    "source:pipeline.deployments+ source:pipeline.deployment_problems+ "
    "source:pipeline.clock_shifts+"
)


def rebuild_station_marts(settings: Settings) -> float:
    """``dbt build`` of what depends on the station tables only; seconds taken."""
    from flows.store import open_store
    from flows.store.dbt import run_dbt

    result = run_dbt(settings, "build", "--select", *STATION_SELECTION.split(),
                     store=open_store(settings))  # fmt: skip
    return result.seconds


def _open(settings: Settings) -> None:
    from flows.store import open_store

    if not open_store(settings).exists():
        raise fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")


@import_app.command("stations")
def import_stations(
    file: Annotated[Path, typer.Argument(help="camtrapR CTtable CSV or deployments.csv.")],
    date_format: Annotated[
        str | None, typer.Option(help="dmy, 'ymd HM', %d/%m/%Y ... (camtrapR dateFormat).")
    ] = None,
    camera_column: Annotated[str | None, typer.Option(help="camtrapR cameraCol.")] = None,
    session_column: Annotated[str | None, typer.Option(help="camtrapR sessionCol.")] = None,
    station_column: Annotated[str | None, typer.Option(help="camtrapR stationCol.")] = None,
    setup_column: Annotated[str | None, typer.Option(help="camtrapR setupCol.")] = None,
    retrieval_column: Annotated[str | None, typer.Option(help="camtrapR retrievalCol.")] = None,
    x_column: Annotated[str | None, typer.Option(help="x / longitude column (utm_x).")] = None,
    y_column: Annotated[str | None, typer.Option(help="y / latitude column (utm_y).")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of x/y, e.g. EPSG:32650.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Asia/Kuching.")] = None,
    build: Annotated[bool, typer.Option(help="Rebuild the marts that depend on it.")] = True,
    warehouse: WarehouseOpt = None,
) -> None:
    """Deployments and problem periods from a station table, as camtrapR's cameraOperation
    reads it. A bad row loads nothing; re-loading the same table adds nothing."""
    from flows.store import open_store
    from flows.store.deployments import load_deployments_csv

    settings = load_settings(
        warehouse=warehouse, station_date_format=date_format,
        station_camera_column=camera_column, station_session_column=session_column,
        station_column=station_column, station_setup_column=setup_column,
        station_retrieval_column=retrieval_column, station_x_column=x_column,
        station_y_column=y_column, station_crs=crs, station_timezone=timezone,
    )  # fmt: skip
    _open(settings)
    try:
        with open_store(settings).writing() as con:
            loaded = load_deployments_csv(con, file, settings.station_table_options())
    except user_errors() as exc:
        raise fail_from(exc) from None
    console.print(
        f"{loaded.path} ({loaded.form}): {loaded.loaded} deployments, {loaded.problems} problem "
        f"periods{'' if loaded.changed else '; nothing changed'}"
        + (f"; {loaded.removed} removed" if loaded.removed else "")
    )
    _rebuild(settings, build and loaded.changed)


@import_app.command("timeshifts")
def import_timeshifts(
    file: Annotated[Path, typer.Argument(help="camtrapR timeShiftTable CSV.")],
    build: Annotated[bool, typer.Option(help="Rebuild the marts that depend on it.")] = True,
    warehouse: WarehouseOpt = None,
) -> None:
    """Clock shifts per station (and camera), camtrapR's "1:0:0 0:0:0" with a sign, or
    seconds. The photos are not rewritten; the marts read the shifted times."""
    from flows.store import open_store
    from flows.store.time_shifts import load_time_shifts

    settings = load_settings(warehouse=warehouse)
    _open(settings)
    try:
        with open_store(settings).writing() as con:
            loaded = load_time_shifts(con, file)
    except user_errors() as exc:
        raise fail_from(exc) from None
    console.print(
        f"{loaded.path}: {loaded.loaded} clock shifts"
        + ("" if loaded.changed else "; nothing changed")
    )
    _rebuild(settings, build and loaded.changed)


def _rebuild(settings: Settings, build: bool) -> None:
    if not build:
        return
    try:
        seconds = rebuild_station_marts(settings)
    except user_errors() as exc:
        raise fail_from(exc) from None
    console.print(f"marts that depend on the station tables rebuilt in {seconds:.1f} s")
    _warn_unmatched(settings)


def _warn_unmatched(settings: Settings) -> None:
    """What the rebuilt marts say did not meet: listed deployments without a photo (a station
    name that does not match the photos' site folders?) and photos no table lists (their effort
    is inferred from the photos themselves)."""
    from flows.store import open_store

    with open_store(settings).reading() as con:
        empty = con.execute(
            "select deployment_id from marts.dim_deployments where not is_inferred and images = 0"
            " order by 1"
        ).fetchall()
        unlisted = con.execute(
            "select deployment_id from marts.dim_deployments where is_inferred order by 1"
        ).fetchall()
    for what, found in (
        ("listed deployments without a photo (do their station names match the photos' "
         "sites?)", empty),
        ("cameras no station table lists (effort inferred from their photos)", unlisted),
    ):  # fmt: skip
        if found:
            names = ", ".join(str(r[0]) for r in found[:8])
            more = f" and {len(found) - 8} more" if len(found) > 8 else ""
            err.print(f"warning: {len(found)} {what}: {names}{more}")
