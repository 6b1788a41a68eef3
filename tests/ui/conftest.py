"""Fixtures for the dashboard's browser tests: Debian's Chromium driven by Playwright.

Playwright's own browser download is never used: ``scripts/ui-test-deps.sh`` (run by
``make install-test``) installs Debian's ``chromium`` and builds the dashboard. Without
them these tests are skipped locally and fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.client import Client
from shipyard.server.ui import DIST

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _missing("Debian's chromium is not installed: run `bash scripts/ui-test-deps.sh`")
    if not (DIST / "index.html").is_file():
        _missing("the dashboard is not built: run `bash scripts/ui-build.sh`")
    return str(path)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -e '.[test]'")
    profile = tempfile.mkdtemp(prefix="shipyard-ui-chromium-")
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def platform_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One embedded platform (SQLite + local processes) for a module's browser tests."""
    c = Client.embedded(Path(tmp_path_factory.mktemp("ui")))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh tab; its screenshot lands in test-artifacts/ui/<test>.png, and the page's
    console errors fail the test."""
    pg = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(30_000)
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        pg.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
