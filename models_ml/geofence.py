"""Geofencing species predictions by site (as Wildlife Insights / SpeciesNet do).

A geofence file lists, per site, the taxa that can occur there (TOML)::

    # any site not listed uses "default" when it is present, else it has no list
    default = ["red deer", "wild boar", "red fox"]

    [sites]
    island-north = ["island fox", "spotted skunk"]

Matching is case-insensitive on the classifier's label. ``animal`` (and ``blank``) is always
allowed. A prediction outside the list is never silently kept: when the top label is outside,
rank 1 becomes ``animal`` (probability of the original top label) with status ``rolled_up``
and the original labels follow from rank 2 on, each ``rolled_up`` when it is outside the list
and ``allowed`` when it is inside. With no list for the site every row is ``no_list``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .classifier import Prediction

ALLOWED = "allowed"
ROLLED_UP = "rolled_up"
NO_LIST = "no_list"
ROLL_UP_LABEL = "animal"
ALWAYS_ALLOWED = frozenset({"animal", "blank"})


@dataclass(frozen=True)
class FencedPrediction:
    label: str
    probability: float
    rank: int
    geofence_status: str  # allowed | rolled_up | no_list


class GeofenceError(ValueError):
    """The geofence file cannot be used."""


@dataclass(frozen=True)
class Geofence:
    """Site -> allowed labels (lower case); ``default`` for sites not listed."""

    sites: Mapping[str, frozenset[str]]
    default: frozenset[str] | None = None

    @classmethod
    def from_mapping(
        cls, sites: Mapping[str, Iterable[str]], default: Iterable[str] | None = None
    ) -> Geofence:
        norm = {str(s): frozenset(str(t).strip().lower() for t in ts) for s, ts in sites.items()}
        fallback = (
            frozenset(str(t).strip().lower() for t in default) if default is not None else None
        )
        return cls(norm, fallback)

    @classmethod
    def from_file(cls, path: Path) -> Geofence:
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise GeofenceError(
                f"cannot read the geofence file {path} ({exc}); fix it or unset geofence_file"
            ) from exc
        sites = data.get("sites", {})
        default = data.get("default")
        bad = [s for s, ts in sites.items() if not isinstance(ts, list)]
        bad_default = default is not None and not isinstance(default, list)
        if not isinstance(sites, dict) or bad or bad_default:
            raise GeofenceError(
                f"{path}: expected `default = [taxa...]` and a [sites] table of "
                f"`site = [taxa...]` lists (bad: {bad or 'default'})"
            )
        return cls.from_mapping(sites, default)

    def allowed(self, site: str | None) -> frozenset[str] | None:
        """The site's list, ``default`` when it has none, None when there is no list."""
        if site is not None and site in self.sites:
            return self.sites[site]
        return self.default

    def apply(self, site: str | None, predictions: Sequence[Prediction]) -> list[FencedPrediction]:
        """The predictions of one crop (rank order) with their geofence status."""
        allowed = self.allowed(site)
        return fence(predictions, allowed)


def fence(
    predictions: Sequence[Prediction], allowed: frozenset[str] | None
) -> list[FencedPrediction]:
    """See the module doc; ``allowed`` None means there is no list for the site."""
    preds = sorted(predictions, key=lambda p: p.rank)
    if allowed is None:
        return [
            FencedPrediction(p.label, p.probability, i, NO_LIST) for i, p in enumerate(preds, 1)
        ]

    def ok(label: str) -> bool:
        low = label.strip().lower()
        return low in allowed or low in ALWAYS_ALLOWED

    out: list[FencedPrediction] = []
    if preds and not ok(preds[0].label):
        out.append(FencedPrediction(ROLL_UP_LABEL, preds[0].probability, 1, ROLLED_UP))
    for p in preds:
        status = ALLOWED if ok(p.label) else ROLLED_UP
        out.append(FencedPrediction(p.label, p.probability, len(out) + 1, status))
    return out
