"""Privacy of places and people, shared by the dashboard, the alerts and the exports.

- **Location**: coordinates of sensitive species are generalised to a grid everywhere they are
  shown or exported (exact values stay in the raw tables, for rangers): :func:`is_sensitive`,
  :func:`generalise`, :func:`sensitive_site_ids` (which sites: dbt's ``marts.live_sites``),
  :func:`sensitive_sites` (for other taxa).
- **People**: person boxes are blurred in every image shown or exported to anyone who is not a
  ranger: :func:`blur_boxes` (the originals are never modified).

Plain functions; PIL and DuckDB are imported only for their types here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    from PIL import Image


def is_sensitive(label: str | None, sensitive: Iterable[str]) -> bool:
    """Whether a species label names a sensitive taxon (substring match, case-insensitive)."""
    if not label:
        return False
    text = label.lower()
    return any(word.lower() in text for word in sensitive if word)


def sensitive_label_sql(column: str, sensitive: Iterable[str]) -> tuple[str, list[str]]:
    """:func:`is_sensitive` as a SQL condition on ``column`` and its parameters (the words);
    the same rule as dbt's macro is_sensitive_label (dbt/macros/detection_candidates.sql)."""
    words = [w.lower() for w in sensitive if w]
    if not words:
        return "false", []
    return "(" + " or ".join(f"contains(lower({column}), ?)" for _ in words) + ")", words


def generalise(
    lat: float | None, lon: float | None, grid_km: float
) -> tuple[float | None, float | None, float | None]:
    """The centre of the ``grid_km`` cell holding the point, and the uncertainty in metres
    (half the cell diagonal), as Camtrap DP's coordinateUncertainty expects."""
    if lat is None or lon is None or grid_km <= 0:
        return lat, lon, None
    step_lat = grid_km / 111.32
    cell_lat = (math.floor(lat / step_lat) + 0.5) * step_lat
    step_lon = grid_km / max(111.32 * math.cos(math.radians(cell_lat)), 1e-6)
    cell_lon = (math.floor(lon / step_lon) + 0.5) * step_lon
    uncertainty_m = grid_km * 1000 * math.sqrt(2) / 2
    return round(cell_lat, 5), round(cell_lon, 5), round(uncertainty_m)


# --------------------------------------------------------------------------- people


def blur_radius(width: int, height: int) -> int:
    """The Gaussian radius people are blurred with: 1/40 of the shorter side, at least 8 px."""
    return max(8, min(width, height) // 40)


def box_pixels(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    """A normalised ``[x, y, w, h]`` box as pixel ``(x0, y0, x1, y1)``, clipped to the image."""
    x, y, w, h = box
    x0 = int(max(0.0, x) * width)
    y0 = int(max(0.0, y) * height)
    x1 = int(min(1.0, x + w) * width)
    y1 = int(min(1.0, y + h) * height)
    return x0, y0, x1, y1


def blur_boxes(img: Image.Image, boxes: Iterable[tuple[float, float, float, float]]) -> Image.Image:
    """Blur every normalised ``[x, y, w, h]`` box of ``img`` (in place; ``img`` is returned).

    Each region is pixelated to blocks of the blur radius first and then Gaussian-blurred,
    so that no detail survives that deconvolution could bring back. Only the pixels inside
    a box are read, so nothing from around it bleeds in. The image must be in display
    orientation (boxes are stored for the image as the detectors saw it).
    """
    from PIL import Image as PILImage
    from PIL import ImageFilter

    width, height = img.size
    radius = blur_radius(width, height)
    for box in boxes:
        x0, y0, x1, y1 = box_pixels(box, width, height)
        if x1 <= x0 or y1 <= y0:
            continue
        region = img.crop((x0, y0, x1, y1))
        small = (max(1, (x1 - x0) // radius), max(1, (y1 - y0) // radius))
        region = region.resize(small, PILImage.Resampling.BOX).resize(
            (x1 - x0, y1 - y0), PILImage.Resampling.BILINEAR
        )
        img.paste(region.filter(ImageFilter.GaussianBlur(radius)), (x0, y0))
    return img


# --------------------------------------------------------------------------- where


def sensitive_site_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Sites where any camera ever recorded a sensitive taxon, as dbt decides it now
    (``marts.live_sites.is_sensitive``: the var sensitive_species over the labels that the
    counting rules say were recorded, reviews included). Empty without the live views."""
    from flows.store.warehouse import has_mart

    if not has_mart(con, "live_sites"):
        return set()
    rows = con.execute("select site_id from marts.live_sites where is_sensitive").fetchall()
    return {str(site) for (site,) in rows}


def sensitive_sites(
    con: duckdb.DuckDBPyConnection,
    sensitive: Iterable[str],
    thresholds: Mapping[str, float] | None = None,
    classification_threshold: float | None = None,
) -> set[str]:
    """Sites where any camera ever recorded one of the ``sensitive`` taxa: the labels dbt says
    were recorded there (``marts.live_site_labels``: boxes that are not false positives and
    count or are at or above their category's threshold, whichever model; the latest review of
    a whole image), matched with :func:`is_sensitive`; and any label of
    ``marts.fct_daily_population``. For the settings' own taxa read
    :func:`sensitive_site_ids`.

    Which boxes count, at which threshold, and which review wins are dbt's rules, made with
    the settings the live views were created with: ``thresholds`` and
    ``classification_threshold`` are accepted for old callers and not used.

    Site-level on purpose: cameras of one site are close together, so a person seen at any of
    them tells where the rhinos are.
    """
    del thresholds, classification_threshold  # dbt's (marts.live_rules), not the caller's
    words = tuple(sensitive)
    if not any(words):
        return set()
    from flows.store.warehouse import has_mart

    rows: list[tuple[object, object]] = []
    if has_mart(con, "live_site_labels"):
        rows += con.execute("select site_id, label from marts.live_site_labels").fetchall()
    if has_mart(con, "fct_daily_population"):  # what the dashboard counts
        rows += con.execute(
            "select distinct site_id, lower(label) from marts.fct_daily_population"
        ).fetchall()
    return {str(site) for site, label in rows if is_sensitive(str(label or ""), words)}
