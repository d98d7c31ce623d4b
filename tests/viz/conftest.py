"""The figure tests share hand-made results from ``_data.py``."""

from __future__ import annotations

import sys
from pathlib import Path

# --import-mode=importlib leaves test folders off sys.path; the tests import _data.py from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))
