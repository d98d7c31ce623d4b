"""Workbench: the panels wired together (export -> graph -> toggles -> diff -> sweep)."""

from __future__ import annotations

from pathlib import Path

import workbench as wb
from workbench.widgets import Workbench
from workbench.widgets.dashboard import TAB_TITLES
from workbench.widgets.netron import live_servers

WAIT_S = 90


def test_export_feeds_every_panel(mlp: wb.zoo.ZooModel, mlp_spec: wb.ExportSpec, tmp_path: Path) -> None:
    bench = Workbench(mlp.model, mlp.example_inputs, mlp_spec, path=tmp_path / "mlp.onnx")
    try:
        assert [bench.tabs.get_title(i) for i in range(4)] == list(TAB_TITLES)
        assert bench.graph.state == "idle" and bench.diff.state == "idle" and bench.sweep.state == "idle"
        bench.export.export_button.click()
        assert bench.export.wait(WAIT_S) and bench.export.state == "done", bench.export.error
        exported = str(tmp_path / "mlp.onnx")
        assert bench.path == exported
        assert bench.graph.path == bench.diff.onnx_path == bench.sweep.onnx_path == exported
        assert bench.wait(WAIT_S)
        assert bench.graph.state == "done" and bench.graph.netron.port > 0
        assert bench.diff.state == "done" and bench.diff.comparison.ok

        bench.toggles.opt_level.value = "basic"
        assert bench.diff.config.opt_level == "basic"
        assert bench.sweep.extra_config == bench.toggles.value
        assert bench.wait(WAIT_S) and "CPU/basic" in bench.diff.badge.value

        redraws = bench.diff.redraws
        bench.export.exporter.value, bench.export.opset.value = "torchscript", 16  # same path, new file
        bench.export.export()
        assert bench.export.wait(WAIT_S) and bench.export.result.opset == 16
        assert bench.wait(WAIT_S) and bench.diff.redraws > redraws
        assert bench.graph.summary.opsets[""] == 16

        bench.select("latency")
        assert bench.tabs.selected_index == 3
    finally:
        bench.close()
    assert live_servers() == []
