"""The house rules: core is headless; dependencies point one way (import-linter contracts in
pyproject.toml); no package below the top imports the curated ``workbench`` namespace; modules and
functions stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"
UI = ("ipywidgets", "anywidget", "plotly", "IPython", "traitlets")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_importing_core_loads_no_ui_library():
    core = sorted(p.stem for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module('workbench.core.' + name)\n"
        f"print(','.join(m for m in {UI!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"workbench.core pulled in UI libraries: {out.stdout}"


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout, out.stdout


@pytest.mark.parametrize("package", ["core", "zoo", "doctor", "viz"])
def test_lower_layers_do_not_import_the_curated_namespace(package: str):
    """``import workbench as wb`` inside a lower layer would hide an upward import from the contracts."""
    offenders = []
    for path in (PACKAGE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "workbench" for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "workbench" and node.level == 0:
                names = {a.name for a in node.names}
                if names - {"errors"}:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"import the module you need, not the curated `workbench` namespace: {offenders}"


def test_modules_and_functions_stay_small():
    too_long = []
    for path in _modules():
        text = path.read_text()
        rel = path.relative_to(ROOT)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, "split these (modules <= 400 lines, functions <= 60):\n" + "\n".join(too_long)
