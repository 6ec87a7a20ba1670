"""The companion ``rai_intervals.csv`` of the CSV and Camtrap DP exports: RAI per site, period
and species with its bootstrap interval, read from ``marts.fct_rai_intervals`` as it stands
(the bootstrap, its vars and the RAI rule are dbt's: docs/marts.md "RAI intervals").

Species only (``category = 'animal'``; people and vehicles stay out of a biodiversity file),
per site and for ``'(all sites)'``; ``period`` is the first day of the period (the mart's
``period`` says week or month, ``trend_period``). Site ids carry no coordinates, so nothing here
needs generalising.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.formats.common import fetch, has_relation, write_csv

RAI_INTERVALS_FILE = "rai_intervals.csv"
RAI_INTERVAL_FIELDS = (
    "site", "period", "species", "rai", "lower", "upper", "confidence_level", "replicates",
    "seed", "unit", "n_units", "between_deployment_variance",
)  # fmt: skip

#: The Table Schema of the file (an extra resource of the Camtrap DP package).
RAI_INTERVALS_SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "site", "type": "string", "constraints": {"required": True}},
        {"name": "period", "type": "date", "constraints": {"required": True},
         "description": "First day of the period (week or month: the marts' trend_period)."},
        {"name": "species", "type": "string", "constraints": {"required": True}},
        {"name": "rai", "type": "number", "constraints": {"required": True, "minimum": 0},
         "description": "Independent events per 100 trap-nights in the period."},
        {"name": "lower", "type": "number", "constraints": {"required": True, "minimum": 0}},
        {"name": "upper", "type": "number", "constraints": {"required": True, "minimum": 0}},
        {"name": "confidence_level", "type": "number", "constraints": {"required": True}},
        {"name": "replicates", "type": "integer", "constraints": {"required": True}},
        {"name": "seed", "type": "integer", "constraints": {"required": True}},
        {"name": "unit", "type": "string",
         "constraints": {"required": True, "enum": ["camera_day", "deployment"]}},
        {"name": "n_units", "type": "integer", "constraints": {"required": True}},
        {"name": "between_deployment_variance", "type": "number",
         "description": "Sample variance of per-deployment RAI; empty with one deployment."},
    ],
    "primaryKey": ["site", "period", "species"],
}  # fmt: skip


def write_rai_intervals(con: Any, out_dir: Path) -> Path | None:
    """Write ``out_dir/rai_intervals.csv`` from marts.fct_rai_intervals; None (nothing written)
    when the warehouse's marts predate that mart (``trapflow marts`` builds it)."""
    if not has_relation(con, "marts", "fct_rai_intervals"):
        return None
    rows = fetch(
        con,
        """
        select site_id as site, strftime(period_start, '%Y-%m-%d') as period,
               label as species, rai, rai_lower as lower, rai_upper as upper,
               confidence_level, replicates, seed, unit, n_units, between_deployment_variance
        from marts.fct_rai_intervals
        where category = 'animal'
        order by site_id, period_start, label
        """,
    )
    path = out_dir / RAI_INTERVALS_FILE
    write_csv(path, RAI_INTERVAL_FIELDS, rows)
    return path


__all__ = [
    "RAI_INTERVALS_FILE",
    "RAI_INTERVALS_SCHEMA",
    "RAI_INTERVAL_FIELDS",
    "write_rai_intervals",
]
