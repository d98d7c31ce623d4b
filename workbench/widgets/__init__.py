"""Notebook panels for the pipeline. They compute nothing: each action calls one core (or doctor)
function off the kernel's main thread and shows the result, or the error, inside the widget.

    >>> import workbench as wb
    >>> from workbench.widgets import Workbench
    >>> Workbench.from_case(wb.zoo.get("text_classifier", smoke=True))
    >>> Workbench(model, example_inputs, spec=spec)          # the same, from the parts

Every panel that reads an ONNX file follows its ``onnx_model`` trait; every panel that runs the
model has a ``from_case(case, ...)`` twin of its constructor.
"""

from __future__ import annotations

from workbench.widgets.dashboard import Workbench
from workbench.widgets.export_form import ExportForm
from workbench.widgets.graph import GraphInspector
from workbench.widgets.live_diff import LiveDiff
from workbench.widgets.netron import NetronView
from workbench.widgets.serve import ServePanel
from workbench.widgets.sweep import LatencySweep
from workbench.widgets.toggles import SessionToggles
from workbench.widgets.tuner import Tuner

__all__ = ["ExportForm", "GraphInspector", "LatencySweep", "LiveDiff", "NetronView", "ServePanel", "SessionToggles", "Tuner",
           "Workbench"]
