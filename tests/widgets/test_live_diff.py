"""LiveDiff: the comparison's figures, redrawn on config and input changes, errors shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import workbench as wb
from workbench.widgets import LiveDiff

WAIT_S = 60


def _diff(mlp: wb.zoo.ZooModel, path: Path, spec: wb.ExportSpec, **kwargs: object) -> LiveDiff:
    diff = LiveDiff(mlp.model, path, mlp.example_inputs, spec=spec, **kwargs)
    assert diff.wait(WAIT_S)
    return diff


def test_figures_show_the_comparison(mlp: wb.zoo.ZooModel, mlp_onnx: Path, mlp_spec: wb.ExportSpec) -> None:
    diff = _diff(mlp, mlp_onnx, mlp_spec)
    assert diff.state == "done" and diff.redraws == 1, diff.error
    comparison = diff.comparison
    assert comparison is not None and comparison.ok
    expected = np.asarray(comparison.outputs[0].expected).reshape(-1)
    points, line = diff.scatter.data
    assert points.type == "scatter" and np.allclose(sorted(points.x), sorted(expected))
    assert line.name == "y = x"
    assert diff.histogram.figure.layout.yaxis.type == "log"
    assert sum(sum(t.y) for t in diff.histogram.data) == comparison.outputs[0].total
    assert diff.bars.data[0].y[0] == comparison.max_abs
    assert "wb-badge-pass" in diff.badge.value and "CPU/all" in diff.badge.value
    assert all("CPU/all" in f.figure.layout.title.text for f in (diff.scatter, diff.histogram, diff.bars))
    assert set(diff.timings) == {"wait", "session", "compare", "figures", "send", "total"}


def test_a_config_change_redraws(mlp: wb.zoo.ZooModel, mlp_onnx: Path, mlp_spec: wb.ExportSpec) -> None:
    diff = _diff(mlp, mlp_onnx, mlp_spec)
    uids = [t.uid for t in diff.scatter.data]
    diff.config = wb.SessionConfig(opt_level="disable")
    assert diff.wait(WAIT_S) and diff.redraws == 2
    assert "CPU/disable" in diff.scatter.figure.layout.title.text and "CPU/disable" in diff.badge.value
    assert [t.uid for t in diff.scatter.data] == uids  # same kind of figure: updated in place
    assert diff.last_redraw_s > 0


def test_sliders_remake_the_inputs(mlp: wb.zoo.ZooModel, mlp_onnx: Path, mlp_spec: wb.ExportSpec) -> None:
    diff = _diff(mlp, mlp_onnx, mlp_spec)
    assert list(diff.sliders) == ["batch"] and diff.sliders["batch"].value == 2
    diff.sliders["batch"].value = 5
    assert diff.wait(WAIT_S) and diff.state == "done"
    assert diff.comparison.input_shapes == [[(5, 16)]]
    assert diff.comparison.outputs[0].shape == (5, 4)


def test_a_failing_comparison_is_shown(mlp: wb.zoo.ZooModel, mlp_onnx: Path, mlp_spec: wb.ExportSpec) -> None:
    diff = _diff(mlp, mlp_onnx, mlp_spec)
    diff.inputs = (torch.randn(2, 7),)  # the graph takes 16 features
    assert diff.wait(WAIT_S)
    assert diff.state == "failed" and "FeedError" in diff.error and diff.comparison is None
    assert "NO RESULT" in diff.badge.value and "The comparison failed" in diff.status.value
    diff.inputs = mlp.example_inputs
    assert diff.wait(WAIT_S) and diff.state == "done" and diff.error == ""


def test_no_model_yet_is_idle(mlp: wb.zoo.ZooModel) -> None:
    diff = LiveDiff(mlp.model, inputs=mlp.example_inputs)
    assert diff.state == "idle" and diff.comparison is None and diff.redraws == 0
    assert diff.scatter.figure is None and diff.scatter.children == ()  # no plotly front end sent yet
    assert "export one" in diff.status.value


def test_a_fail_verdict_is_drawn_red(mlp: wb.zoo.ZooModel, mlp_onnx: Path, mlp_spec: wb.ExportSpec) -> None:
    diff = _diff(mlp, mlp_onnx, mlp_spec, tolerance=(0.0, 0.0))
    if diff.comparison.ok:  # bit-exact on this machine: nothing to draw red
        return
    assert "wb-badge-fail" in diff.badge.value
