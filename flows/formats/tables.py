"""One CSV per mart for spreadsheets and R: :func:`export_mart_csvs`.

Coordinates at sites that ever recorded a sensitive species are generalised; which sites
those are is :func:`flows.access.privacy.sensitive_sites`'s to say, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.access.privacy import generalise, sensitive_sites
from flows.formats.common import default_setting, require_marts
from flows.formats.rai_intervals import write_rai_intervals
from flows.store import warehouse as _warehouse


def export_mart_csvs(
    warehouse: Path,
    out_dir: Path,
    *,
    sensitive: Sequence[str] = (),
    grid_km: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    classification_threshold: float | None = None,
) -> list[Path]:
    """One CSV per table in the marts schema (header row, ISO dates, empty = null), and the
    companion ``rai_intervals.csv`` (:mod:`flows.formats.rai_intervals`) last.

    ``latitude``/``longitude`` of rows at sites that ever recorded a ``sensitive`` taxon
    (``flows.access.privacy.sensitive_sites``) are written as the centre of their ``grid_km`` cell.
    Unset ``grid_km`` is the setting's default. Which boxes count and at which threshold is
    dbt's (``thresholds`` and ``classification_threshold`` go to ``sensitive_sites``, which
    takes them from the rules the live views were built with).
    """
    require_marts(warehouse)
    if grid_km is None:
        grid_km = float(default_setting("sensitive_grid_km"))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with _warehouse.connect(warehouse, read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' order by table_name"
            ).fetchall()
        ]
        located = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.columns where table_schema = 'marts' "
                "and column_name in ('site_id', 'latitude', 'longitude') "
                "group by table_name having count(*) = 3"
            ).fetchall()
        ]
        coarse = _grid_table(
            con,
            located,
            sensitive,
            grid_km,
            thresholds,
            classification_threshold,
        )
        for name in names:
            path = out_dir / f"{name}.csv"
            target = str(path).replace("'", "''")
            select = f'select * from marts."{name}"'
            if coarse and name in located:
                select = (
                    "select t.* replace (coalesce(g.glat, t.latitude) as latitude, "
                    f'coalesce(g.glon, t.longitude) as longitude) from marts."{name}" t '
                    "left join tf_grid g on g.site_id = t.site_id and g.lat = t.latitude "
                    "and g.lon = t.longitude"
                )
            con.execute(f"copy ({select}) to '{target}' (header, delimiter ',')")
            written.append(path)
        companion = write_rai_intervals(con, out_dir)
    return [*written, *([companion] if companion else [])]


def _grid_table(
    con: Any,
    located: Sequence[str],
    sensitive: Sequence[str],
    grid_km: float,
    thresholds: Mapping[str, float] | None,
    classification_threshold: float | None,
) -> bool:
    """A temporary table ``tf_grid`` (site, exact lat/lon -> the grid cell's centre) of every
    coordinate the marts hold at a sensitive site; whether there is any."""
    sites = sensitive_sites(con, sensitive, thresholds, classification_threshold)
    if not sites or not located or grid_km <= 0:
        return False
    union = " union all ".join(
        f'select site_id, latitude, longitude from marts."{name}"' for name in located
    )
    points = con.execute(
        f"select distinct site_id, latitude, longitude from ({union}) "
        "where latitude is not null and longitude is not null and site_id in (select unnest(?))",
        [sorted(sites)],
    ).fetchall()
    con.execute(
        "create or replace temp table tf_grid "
        "(site_id varchar, lat double, lon double, glat double, glon double)"
    )
    rows = [[site, lat, lon, *generalise(lat, lon, grid_km)[:2]] for site, lat, lon in points]
    if rows:
        con.executemany("insert into tf_grid values (?, ?, ?, ?, ?)", rows)
    return bool(rows)


__all__ = ["export_mart_csvs"]
