"""The run's report as a Prefect artifact (the Artifacts tab of the flow run in the UI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.pipeline.summary import run_report_markdown

if TYPE_CHECKING:
    from flows.ingest import RunSummary


@task(cache_policy=NO_CACHE)
def publish_run_report(summary: RunSummary) -> str:
    """A markdown table: images, detections by category, species, alerts, quarantine, images/s."""
    markdown = run_report_markdown(summary)
    create_markdown_artifact(
        key="ingest-report", markdown=markdown, description=f"ingest run {summary.run_id[:8]}"
    )
    return markdown
