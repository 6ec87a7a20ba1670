"""Location privacy: coordinates of sensitive species are generalised to a grid everywhere
they are shown or exported (exact values stay in the raw tables, for rangers)."""

from __future__ import annotations

import math
from collections.abc import Iterable

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
