"""The running dashboard in a real headless Chromium: every page draws its charts (not a blank
page, not an exception box); a screenshot per page goes to test-artifacts/.

Needs Debian's chromium at /usr/bin/chromium (.ci/run installs it); never downloads a browser.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import query

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
PAGES = {"population": "/", "sites": "/sites", "human_activity": "/human_activity",
         "review": "/review", "health": "/health"}  # fmt: skip
CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _streamlit(sample_warehouse: Path, tmp_path: Path, **env_extra: str) -> Iterator[str]:
    """``streamlit run`` on a copy of the sample warehouse; its URL once it answers."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(sample_warehouse, warehouse)
    port = _free_port()
    env = {**os.environ, "TRAPFLOW_WAREHOUSE": str(warehouse), **env_extra}
    log = (tmp_path / "streamlit.log").open("w")
    from flows.cli.dashboard import streamlit_command  # what `trapflow dashboard` runs

    proc = subprocess.Popen(
        streamlit_command("127.0.0.1", port),
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture()
def dashboard_url(sample_run: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    with _streamlit(sample_run["warehouse"], tmp_path) as url:
        yield url


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium (.ci/run)")
def test_every_page_renders_in_chromium(dashboard_url: str, sample_run: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    media_id = query(
        sample_run["warehouse"], "select media_id from marts.dim_media where has_animal limit 1"
    )[0][0]
    t0 = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--no-proxy-server"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for name, path in PAGES.items():
                page.goto(dashboard_url + path, wait_until="domcontentloaded")
                page.wait_for_selector(CHART, state="visible", timeout=30_000)
                page.wait_for_timeout(500)  # let the rest of the page settle
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
                assert page.locator('[data-testid="stException"]').count() == 0, name
                assert page.locator(CHART).count() >= 1, name
                # Streamlit's developer toolbar (Deploy, rerun, clear cache) is not for users
                assert page.locator('[data-testid="stAppDeployButton"]').count() == 0, name
                assert page.get_by_text("Deploy", exact=True).count() == 0, name
            # an alert's link: <dashboard_url>/?media_id=<sha256> opens Review on that image
            page.goto(f"{dashboard_url}/?media_id={media_id}", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Review").wait_for(timeout=30_000)
            page.locator('[data-testid="stImage"] img').first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-review-link.png"), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            browser.close()
    assert time.monotonic() - t0 < 60


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium (.ci/run)")
def test_password_sign_in_in_chromium_viewer_gets_no_unblur(
    sample_run: dict[str, Any], tmp_path: Path
) -> None:
    """Password mode in a real browser (docs/security.md): an alert link shows only the sign-in
    form; after it the viewer lands on that image in Review, with no "Blur people" toggle."""
    from playwright.sync_api import sync_playwright

    from flows.access.signin import add_user

    add_user(tmp_path / "users", "vera", "viewer", "viewer-pass-1")
    media_id = query(
        sample_run["warehouse"], "select media_id from marts.dim_media where has_person limit 1"
    )[0][0]
    users = str(tmp_path / "users")
    with (
        _streamlit(sample_run["warehouse"], tmp_path, TRAPFLOW_DASHBOARD_AUTH="password",
                   TRAPFLOW_DASHBOARD_USERS_FILE=users) as url,
        sync_playwright() as pw,
    ):  # fmt: skip
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-proxy-server"]
        )
        page = browser.new_page()
        page.goto(f"{url}/?media_id={media_id}", wait_until="domcontentloaded")
        page.get_by_label("User name").wait_for(timeout=30_000)
        assert page.get_by_role("heading", name="Review").count() == 0
        assert page.locator('[data-testid="stImage"]').count() == 0
        page.get_by_label("User name").fill("vera")
        page.get_by_role("textbox", name="Password").fill("viewer-pass-1")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Review").wait_for(timeout=30_000)
        page.locator('[data-testid="stImage"] img').first.wait_for(timeout=30_000)
        assert page.get_by_text("Signed in as").first.inner_text().endswith("(viewer).")
        assert page.get_by_text("Blur people").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()
