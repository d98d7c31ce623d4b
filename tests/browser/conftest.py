"""Fixtures of the browser tests: a JupyterLab server over a notebook the tests write themselves
(the dashboard of the smoke text classifier, and the Python the tests run against it), and Chromium."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

# --import-mode=importlib leaves test folders off sys.path; the tests share _browser_lab.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _browser_lab import CHROMIUM, CHROMIUM_ARGS, NOTEBOOK, LabServer, start_lab, stop_lab, write_notebook


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the browser tests, and run them last: Playwright's sync API keeps an asyncio event loop running
    in the main thread until its session fixture ends, so any later test calling ``asyncio.run()`` would fail
    with "cannot be called from a running event loop"."""
    browser = [item for item in items if "tests/browser/" in str(item.fspath).replace("\\", "/")]
    for item in browser:
        item.add_marker(pytest.mark.browser)
    chosen = set(map(id, browser))
    items[:] = [item for item in items if id(item) not in chosen] + browser


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Keep each phase's report on the test item (``item.rep_call``), for screenshots on failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with "
                    "`apt-get install -y --no-install-recommends chromium fonts-liberation` (CI does), "
                    "or point WB_CHROMIUM at one")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install -e '.[test]')")
    return CHROMIUM


@pytest.fixture(scope="session")
def lab(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab over a fresh copy of the tests' notebook (autosave is off)."""
    source = write_notebook(tmp_path_factory.mktemp("notebook") / NOTEBOOK)
    server = start_lab(tmp_path_factory.mktemp("lab"), [source])
    try:
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
