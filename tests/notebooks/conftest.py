"""Shared by the notebook tests: where the notebooks are, and a record of how long each one ran."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
TIMES: dict[str, float] = {}


@pytest.fixture(scope="session")
def notebook_times(artifacts: Path) -> Iterator[dict[str, float]]:
    """Seconds per executed notebook; written to test-artifacts/notebook-times.json at the end."""
    yield TIMES
    if TIMES:
        data = {"seconds": TIMES, "total": round(sum(TIMES.values()), 1)}
        (artifacts / "notebook-times.json").write_text(json.dumps(data, indent=1))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMES:
        return
    terminalreporter.section("notebook execution times (fresh kernel each, smoke mode)")
    for name, seconds in TIMES.items():
        terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    terminalreporter.write_line(f"{sum(TIMES.values()):7.1f} s  total for {len(TIMES)} notebook(s)")
