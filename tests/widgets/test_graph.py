"""GraphInspector: the summary as tables and a bar chart, Netron served, failures shown."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import workbench as wb
import workbench.widgets.graph as graph_module
from workbench.widgets import GraphInspector
from workbench.widgets.netron import live_servers

WAIT_S = 60


def test_summary_tables_chart_and_netron(mlp_onnx: Path) -> None:
    graph = GraphInspector(mlp_onnx)
    try:
        assert graph.wait(WAIT_S) and graph.state == "done", graph.error
        summary = graph.summary
        assert isinstance(summary, wb.ModelSummary) and summary.path == mlp_onnx
        assert graph.tables.value == summary._repr_html_()  # the summary's own tables
        assert "batch" in graph.tables.value and "float32" in graph.tables.value
        bars = graph.ops_figure.data[0]
        assert bars.type == "bar" and set(bars.y) == set(summary.ops)
        assert dict(zip(bars.y, bars.x)) == dict(summary.ops)
        assert f"{len(summary.ops)} op types" in graph.status.value
        assert graph.netron is not None and graph.netron.onnx_model == str(mlp_onnx) and graph.netron.port > 0
    finally:
        graph.close()
    assert live_servers() == []


def test_a_missing_file_ends_in_a_visible_error(tmp_path: Path) -> None:
    graph = GraphInspector(tmp_path / "nothing.onnx", netron=False)
    assert graph.wait(WAIT_S)
    assert graph.state == "failed" and "ModelFileError" in graph.error
    assert "Could not read nothing.onnx" in graph.status.value and graph.summary is None


def test_onnx_model_changes_are_followed(mlp_onnx: Path, tmp_path: Path) -> None:
    graph = GraphInspector(netron=False)
    assert graph.state == "idle" and graph.summary is None
    graph.onnx_model = tmp_path / "missing.onnx"  # a Path is taken, and kept as text
    assert graph.onnx_model == str(tmp_path / "missing.onnx")
    graph.onnx_model = str(mlp_onnx)  # the newest file wins
    assert graph.wait(WAIT_S) and graph.state == "done" and graph.summary.path == mlp_onnx
    graph.onnx_model = ""
    assert graph.state == "idle" and graph.summary is None


def test_closing_while_the_summary_loads_starts_no_server(mlp_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0.1 started Netron's server when the summary arrived, after close(), and nothing stopped it."""
    started, release = threading.Event(), threading.Event()

    def slow_summarize(onnx_model: str) -> wb.ModelSummary:
        started.set()
        assert release.wait(WAIT_S)
        return wb.summarize(onnx_model)

    monkeypatch.setattr(graph_module, "summarize", slow_summarize)
    graph = GraphInspector(mlp_onnx)
    assert started.wait(WAIT_S)
    graph.close()
    release.set()
    assert graph.wait(WAIT_S)
    assert graph.netron is not None and graph.netron.server is None and graph.netron.port == 0
    assert live_servers() == []
    graph.reload()  # closed: nothing more happens
    assert graph.wait(WAIT_S) and live_servers() == []
