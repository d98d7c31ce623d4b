"""viz.nodes: time by op type adds up to the profiled total; the top-N table is escaped."""

from __future__ import annotations

import pytest

from workbench.core.nodes import NodeRow, NodeStats
from workbench.errors import InvalidInputError
from workbench.viz.nodes import op_time_figure, top_nodes_figure, top_nodes_html, top_rows

EVIL = "<img src=x onerror=alert(1)>"


def _stats() -> NodeStats:
    rows = [
        NodeRow("/a/MatMul", "MatMul", "enc.a", 0.6, 0.6, "CPUExecutionProvider", "fp32"),
        NodeRow("/b/MatMul", "MatMul", "enc.b", 0.2, 0.2, "CPUExecutionProvider", "fp32"),
        NodeRow(EVIL, "Add", EVIL, 0.15, 0.15, "CPUExecutionProvider", "fp32", error=1e-3),
        NodeRow("Memcpy_1", "MemcpyToHost", "", 0.05, 0.05, "CUDAExecutionProvider", None, in_graph=False, memcpy=True),
        NodeRow("/c/Shape", "Shape", "", None, None, None, "other"),
    ]
    return NodeStats(rows, ("latency", "provider", "precision"), total_ms=1.0, runs=5, config="CPU/all")


def test_op_time_bars_add_up_to_the_total():
    fig = op_time_figure(_stats())
    bar = fig.data[0]
    assert list(bar.y) == ["MatMul", "Add", "MemcpyToHost"]  # slowest first; untimed Shape left out
    assert sum(bar.x) == pytest.approx(1.0) and bar.x[0] == pytest.approx(0.8)
    assert bar.text[0] == "80.0%" and "1.000 ms" in fig.layout.title.subtitle.text


def test_top_nodes_table_and_html():
    stats = _stats()
    rows = top_rows(stats, 2, "latency")
    assert [r[0] for r in rows] == ["/a/MatMul", "/b/MatMul"] and rows[0][4] == "60.0%"
    fig = top_nodes_figure(stats, 3)
    assert list(fig.data[0].cells.values[0]) == ["/a/MatMul", "/b/MatMul", EVIL]
    html = top_nodes_html(stats, 5)
    assert EVIL not in html and "&lt;img src=x" in html and "(Memcpy)" in html
    assert "of 1.000 ms per run" in html
    assert top_rows(stats, 1, "error")[0][0] == EVIL


def test_wrong_arguments_say_what_to_pass():
    with pytest.raises(InvalidInputError, match="NodeStats"):
        op_time_figure({"MatMul": 1})
    with pytest.raises(InvalidInputError, match="metric"):
        top_rows(_stats(), 3, "speed")
    with pytest.raises(InvalidInputError, match="top"):
        op_time_figure(_stats(), top=0)


def test_only_measured_metrics_get_a_column():
    html = top_nodes_html(_stats(), 3)
    assert "<th>error</th>" not in html and "<th>provider</th>" in html and "<th>ms</th>" in html
    fig = top_nodes_figure(_stats(), 3)
    assert list(fig.data[0].header.values) == ["node", "op type", "module", "ms", "share", "provider", "precision"]
