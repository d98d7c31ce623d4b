"""GraphInspector: the summary as tables and a bar chart, Netron served, failures shown."""

from __future__ import annotations

from pathlib import Path

import workbench as wb
from workbench.widgets import GraphInspector
from workbench.widgets.netron import live_servers

WAIT_S = 60


def test_summary_tables_chart_and_netron(mlp_onnx: Path) -> None:
    graph = GraphInspector(mlp_onnx)
    try:
        assert graph.wait(WAIT_S) and graph.state == "done", graph.error
        summary = graph.summary
        assert isinstance(summary, wb.ModelSummary) and summary.path == mlp_onnx
        tables = graph.tables.value
        assert "<i>batch</i>, 16" in tables  # symbolic dims in italics
        assert "float32" in tables and f"{summary.parameter_count:,}" in tables
        bars = graph.ops_figure.data[0]
        assert bars.type == "bar" and set(bars.y) == set(summary.op_histogram)
        assert dict(zip(bars.y, bars.x)) == dict(summary.op_histogram)
        assert graph.netron is not None and graph.netron.path == str(mlp_onnx) and graph.netron.port > 0
    finally:
        graph.close()
    assert live_servers() == []


def test_a_missing_file_ends_in_a_visible_error(tmp_path: Path) -> None:
    graph = GraphInspector(tmp_path / "nothing.onnx", netron=False)
    assert graph.wait(WAIT_S)
    assert graph.state == "failed" and "ModelFileError" in graph.error
    assert "Could not read nothing.onnx" in graph.status.value and graph.summary is None


def test_path_changes_are_followed(mlp_onnx: Path, tmp_path: Path) -> None:
    graph = GraphInspector(netron=False)
    assert graph.state == "idle" and graph.summary is None
    graph.path = str(tmp_path / "missing.onnx")
    graph.path = str(mlp_onnx)  # the newest path wins
    assert graph.wait(WAIT_S) and graph.state == "done" and graph.summary.path == mlp_onnx
    graph.path = ""
    assert graph.state == "idle" and graph.summary is None
