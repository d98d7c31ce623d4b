"""Where the notebooks are, and the execution times the notebook tests record."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
#: Seconds per executed notebook, filled by test_execute and printed at the end of the run.
TIMES: dict[str, float] = {}
