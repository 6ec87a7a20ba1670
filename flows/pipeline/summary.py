"""What is in the warehouse, for people: the end-of-run summary of ``trapflow run``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.store import warehouse as _warehouse


@dataclass
class WarehouseSummary:
    warehouse: str
    images: int = 0
    timestamp_sources: dict[str, int] = field(default_factory=dict)
    categories: list[tuple[str, int, int]] = field(default_factory=list)  # category, images, boxes
    labels: list[tuple[str, str, int]] = field(default_factory=list)  # category, label, images
    sites: int = 0
    cameras: int = 0
    days: int = 0
    first_day: Any = None
    last_day: Any = None
    quarantined: list[tuple[str, str, int]] = field(default_factory=list)  # reason, action, files
    marts_built: bool = False
    human_labels: dict[str, int] = field(default_factory=dict)  # origin -> photos (in force)
    label_conflicts: int = 0  # photos whose imported labels disagree, unresolved


def _has_table(con: Any, schema: str, name: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])


def summarize(warehouse: Path) -> WarehouseSummary:
    """Counts for the whole warehouse (read-only, short-lived connection)."""
    out = WarehouseSummary(str(warehouse))
    if not warehouse.exists():
        return out
    with _warehouse.connect(warehouse, read_only=True) as con:
        if not _has_table(con, "raw", "media"):
            return out
        out.images = con.execute("select count(*) from raw.media").fetchone()[0]  # type: ignore[index]
        out.timestamp_sources = dict(
            con.execute(
                "select timestamp_source, count(*) from raw.media group by 1 order by 1"
            ).fetchall()
        )
        out.sites, out.cameras = con.execute(  # type: ignore[misc]
            "select count(distinct site_id), count(distinct site_id || '/' || camera_id) "
            "from raw.media"
        ).fetchone()
        out.quarantined = [
            (r[0], r[1], r[2])
            for r in con.execute(
                "select reason, action, count(distinct source_uri || file_path) "
                "from raw.quarantine group by 1, 2 order by 2 desc, 3 desc"
            ).fetchall()
        ]
        out.marts_built = _has_table(con, "marts", "fct_daily_population")
        if _has_table(con, "marts", "fct_label_conflicts"):
            out.human_labels = dict(
                con.execute(
                    "select label_origin, count(distinct media_id) from marts.fct_label_reviews "
                    "where is_latest group by 1 order by 2 desc"
                ).fetchall()
            )
            out.label_conflicts = con.execute(  # type: ignore[index]
                "select count(*) from marts.fct_label_conflicts where not is_resolved_by_review"
            ).fetchone()[0]
        if out.marts_built:
            out.categories = [
                (c, int(images or 0), int(boxes or 0))
                for c, images, boxes in con.execute(
                    "select 'animal', count(*) filter (has_animal), sum(n_animals) "
                    "from marts.dim_media union all "
                    "select 'person', count(*) filter (has_person), sum(n_persons) "
                    "from marts.dim_media union all "
                    "select 'vehicle', count(*) filter (has_vehicle), sum(n_vehicles) "
                    "from marts.dim_media"
                ).fetchall()
            ]
            out.labels = [
                (r[0], r[1], r[2])
                for r in con.execute(
                    "select category, label, sum(images) from marts.fct_daily_population "
                    "group by 1, 2 order by 1, 3 desc"
                ).fetchall()
            ]
            out.days, out.first_day, out.last_day = con.execute(  # type: ignore[misc]
                "select count(distinct captured_on), min(captured_on), max(captured_on) "
                "from marts.fct_daily_population where images > 0"  # rows are dense over effort
            ).fetchone()
    return out


def run_report_markdown(run: Any) -> str:
    """One run as a markdown table (for the Prefect artifact): what it did, then the marts."""
    st = run.stats
    rows: list[tuple[str, str]] = [
        ("source", f"`{run.source_uri}`"),
        ("files listed / new", f"{run.files_listed} / {run.files_new}"),
        ("images processed", str(st.images)),
        ("duplicates (same bytes)", str(st.duplicates)),
        ("quarantined (skipped)", str(st.quarantined)),
        ("warnings (processed)", str(st.warnings)),
        ("boxes stored", str(st.detections)),
        ("images/s end to end", f"{run.images_per_s:.2f}"),
        ("seconds", f"{run.duration_s:.1f}"),
        ("models", ", ".join(run.models) or "-"),
    ]
    if st.by_reason:
        rows.append(("quarantine reasons", ", ".join(f"{k} {v}" for k, v in st.by_reason.items())))
    marts = summarize(Path(run.warehouse)) if not getattr(run, "lake", None) else None
    if marts is not None and marts.marts_built:
        for category, images, boxes in marts.categories:
            rows.append((f"{category} (all runs)", f"{images} images, {boxes} boxes"))
        species = [f"{lab} ({n})" for c, lab, n in marts.labels if c == "animal"][:15]
        rows.append(("species (images)", ", ".join(species) or "-"))
    alerts = _alert_counts(Path(run.warehouse), run.run_id)
    if alerts:
        rows.append(("alerts (this run)", alerts))
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return f"### trapflow ingest `{run.run_id[:8]}`\n\n" + "\n".join(lines) + "\n"


def _alert_counts(warehouse: Path, run_id: str) -> str:
    if not warehouse.exists():
        return ""
    try:
        with _warehouse.connect(warehouse, read_only=True, wait_s=5) as con:
            if not _has_table(con, "alerts", "outbox"):
                return ""
            rows = con.execute(
                "select status, count(*) from alerts.outbox where run_id = ? group by 1", [run_id]
            ).fetchall()
    except Exception:  # the report must never fail a run
        return ""
    return ", ".join(f"{status} {n}" for status, n in rows)
