"""The public surface: every name in ``wb.__all__`` resolves, the lazy layers stay lazy, one vocabulary."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys

import workbench as wb


def test_every_exported_name_resolves_and_lazy_modules_are_listed():
    assert len(wb.__all__) == len(set(wb.__all__))
    for name in wb.__all__:
        assert getattr(wb, name) is not None, name
    assert {"widgets", "viz", "report", "doctor"} <= set(dir(wb))
    assert not hasattr(wb, "CancelledError") and not hasattr(wb.errors, "CancelledError")
    assert wb.__version__ == importlib.metadata.version("onnx-workbench")


def test_import_does_not_load_the_ui_or_the_doctor():
    code = ("import sys, workbench; print(sorted(m for m in ('plotly', 'ipywidgets', 'workbench.widgets', "
            "'workbench.doctor', 'workbench.viz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_vocabulary_of_the_public_functions():
    """onnx_model / out / work_dir / inputs; never path, onnx_path, out_dir, feeds; keyword-only options."""
    banned = {"path", "onnx_path", "out_dir", "workdir", "folder", "feeds"}
    for name in wb.__all__:
        obj = getattr(wb, name)
        if not inspect.isfunction(obj) or obj.__module__.startswith("workbench.doctor"):
            continue
        params = inspect.signature(obj).parameters
        assert not banned & set(params), (name, banned & set(params))
        for keyword in ("tolerance", "config", "spec"):
            if keyword in params and name not in ("open_session", "load_session"):
                assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, (name, keyword)
        for p in params.values():
            if isinstance(p.default, bool):
                assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p.name)
