"""The layering rules: core is headless; dependencies point one way (import-linter contracts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ("ipywidgets", "anywidget", "plotly", "IPython", "traitlets")


def test_importing_core_loads_no_ui_library():
    code = (
        "import sys, workbench.core.export, workbench.core.bench, workbench.core.sweep, "
        "workbench.core.compare, workbench.core.probe, workbench.core.optimize, workbench.core.quantize, "
        "workbench.core.iobinding, workbench.core.placement, workbench.core.graph\n"
        f"print(','.join(m for m in {UI!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"workbench.core pulled in UI libraries: {out.stdout}"


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout, out.stdout
