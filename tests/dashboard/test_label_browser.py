"""The Label page in a real headless Chromium, the whole loop: a group of similar crops labelled
with one click (one review per box), undone with the Z key, labelled again; "Train now" runs
to a registered head; the Population page of the same running dashboard (no restart) then
offers the new species. Screenshots go to test-artifacts/.

Needs Debian's chromium at /usr/bin/chromium (.ci/run installs it); never downloads a browser.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import query
from tests.dashboard.test_dashboard_browser import ARTIFACTS, CHROMIUM, _streamlit

NEW = "Sun Bear"


def _reviews(warehouse: Path) -> list[tuple[Any, ...]]:
    return query(warehouse, "select detection_id from review.labels where label = ?", [NEW])


def _until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium (.ci/run)")
def test_label_a_group_undo_train_now_and_population_shows_it(
    sample_run: dict[str, Any], tmp_path: Path, trapflow_env: dict[str, str]
) -> None:
    from playwright.sync_api import sync_playwright

    from flows.pipeline.embed import embed_stored
    from flows.settings import load_settings
    from flows.store import open_store
    from flows.store.dbt import run_dbt

    # the sample run had no species head, so nothing is cached: embed once and rebuild the
    # marts, as `trapflow embed` does
    source = tmp_path / "source.duckdb"
    shutil.copy2(sample_run["warehouse"], source)
    model_dir = tmp_path / "models"  # the head trained here stays out of the other tests
    shutil.copytree(trapflow_env["TRAPFLOW_MODEL_DIR"], model_dir)
    settings = load_settings(warehouse=source, model_dir=model_dir)
    assert embed_stored(settings, open_store(settings)).crops > 0
    run_dbt(settings, "build", store=open_store(settings))  # as `trapflow embed` does
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        _streamlit(source, tmp_path, TRAPFLOW_MODEL_DIR=str(model_dir)) as url,
        sync_playwright() as pw,
    ):
        warehouse = tmp_path / "warehouse.duckdb"  # the copy the dashboard serves
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-proxy-server"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            page.goto(f"{url}/label", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Label", exact=True).wait_for(timeout=30_000)
            page.locator('[data-testid="stImage"] img').first.wait_for(timeout=30_000)
            # S skips a box (the keyboard shortcut) until one has similar crops beside it
            for _ in range(30):
                page.get_by_text("Label 1 box as").or_(
                    page.get_by_text("similar crops")
                ).first.wait_for(timeout=30_000)
                page.wait_for_timeout(300)
                if page.get_by_role("checkbox", name="same").count():
                    break
                page.keyboard.press("s")
            group = page.get_by_role("checkbox", name="same").count()
            assert group >= 1  # similar crops were found from the cached embeddings
            page.screenshot(path=str(ARTIFACTS / "dashboard-label.png"), full_page=True)

            # one click labels the box and its group: one review per box
            page.get_by_label("Another species").fill(NEW)
            page.get_by_label("Another species").press("Enter")
            page.get_by_role("button", name="Label as this species").click()
            saved = _until(lambda: len(_reviews(warehouse)) == 1 + group)
            rows = _reviews(warehouse)
            assert saved, rows
            assert len({r[0] for r in rows}) == len(rows)  # distinct boxes

            # Z undoes it (the keyboard shortcut), and the boxes are back in the queue
            page.locator("h1").first.click()  # focus off the text box
            page.keyboard.press("z")
            assert _until(lambda: len(_reviews(warehouse)) == 0), _reviews(warehouse)

            # label again, then train now: a Prefect flow run with progress, a registered head
            page.get_by_label("Another species").fill(NEW)
            page.get_by_label("Another species").press("Enter")
            page.get_by_role("button", name="Label as this species").click()
            assert _until(lambda: len(_reviews(warehouse)) >= 1)
            page.get_by_role("button", name="Train now").click()
            page.get_by_text("Trained species_head@1").wait_for(timeout=240_000)
            assert (model_dir / "trained" / "registry.toml").read_text().count("species_head")
            page.get_by_text("The head's report").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-label-trained.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0

            # the Population page of this same server offers the new species
            page.goto(url + "/", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Population").wait_for(timeout=30_000)
            page.get_by_label("Species").first.click()
            page.get_by_role("option", name=NEW).wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-population-new.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
