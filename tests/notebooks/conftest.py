"""The notebook tests' record of how long each notebook ran, saved and printed at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

# --import-mode=importlib leaves test folders off sys.path; the notebook tests share _notebook_paths.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _notebook_paths import TIMES  # noqa: E402


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
