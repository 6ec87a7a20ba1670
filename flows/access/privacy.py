"""Privacy of places and people, shared by the dashboard, the alerts and the exports.

- **Location**: coordinates of sensitive species are generalised to a grid everywhere they are
  shown or exported (exact values stay in the raw tables, for rangers): :func:`is_sensitive`,
  :func:`generalise`, :func:`sensitive_sites`.
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

#: Default sensitive taxa: rhinos and elephants (any label containing one of these words,
#: case-insensitive, matches: 'black rhinoceros', 'Diceros bicornis', 'African elephant', ...).
DEFAULT_SENSITIVE = (
    "rhinoceros", "rhino", "rhinocerotidae", "ceratotherium", "diceros", "rhinoceros unicornis",
    "dicerorhinus", "elephant", "elephantidae", "loxodonta", "elephas maximus",
)  # fmt: skip


def is_sensitive(label: str | None, sensitive: Iterable[str]) -> bool:
    """Whether a species label names a sensitive taxon (substring match, case-insensitive)."""
    if not label:
        return False
    text = label.lower()
    return any(word.lower() in text for word in sensitive if word)


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


_SITE_LABELS = """
select distinct m.site_id, lower(x.label) as label
from raw.media m
join (
    select d.media_id, d.label
    from raw.detections d
    where d.confidence >= coalesce(
        case d.category when 'animal' then $animal when 'person' then $person
                        when 'vehicle' then $vehicle end, $animal)
      and not exists (
        select 1 from review.labels r
        where r.detection_id = d.detection_id and r.is_false_positive)
    union all
    select c.media_id, c.label from raw.classifications c where c.probability >= $species
    union all
    select r.media_id, r.label from review.labels r
    where r.label is not null and not r.is_false_positive
) x on x.media_id = m.media_id
where x.label is not null
"""


def sensitive_sites(
    con: duckdb.DuckDBPyConnection,
    sensitive: Iterable[str],
    thresholds: Mapping[str, float],
    classification_threshold: float,
) -> set[str]:
    """Sites where any camera ever recorded a sensitive taxon: in the raw tables (so it holds
    before the marts are built) a detector box of any model at or above its category's
    threshold, a species classification at or above ``classification_threshold``, or a
    reviewer's label (boxes a reviewer marked as false positives do not count); and any label
    of ``marts.fct_daily_population`` when it exists.

    Site-level on purpose: cameras of one site are close together, so a person seen at any of
    them tells where the rhinos are.
    """
    words = tuple(sensitive)
    if not any(words):
        return set()
    rows = con.execute(
        _SITE_LABELS,
        {
            "animal": thresholds.get("animal", 0.25),
            "person": thresholds.get("person", 0.5),
            "vehicle": thresholds.get("vehicle", 0.5),
            "species": classification_threshold,
        },
    ).fetchall()
    marts = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'marts' and table_name = 'fct_daily_population'"
    ).fetchone()
    if marts and marts[0]:  # what the dashboard counts (and all there is in lake mode)
        rows += con.execute(
            "select distinct site_id, lower(label) from marts.fct_daily_population"
        ).fetchall()
    return {str(site) for site, label in rows if is_sensitive(label, words)}
