"""GraphInspector: the summary as tables and a bar chart, Netron served, failures shown."""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import onnx
import pytest
import traitlets

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


# -- issue 12: numbers on the graph ----------------------------------------------------------------

def _served_state(graph: GraphInspector) -> dict:
    """What the Netron page reads: the overlay JSON its own server answers with."""
    with urllib.request.urlopen(graph.netron.server.url + "wb-overlay.json", timeout=5) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.loads(response.read())


def test_the_latency_overlay_is_measured_drawn_and_served(mlp_onnx: Path, mlp: wb.ModelCase) -> None:
    graph = GraphInspector(mlp_onnx, "latency", inputs=mlp.make_inputs(batch=2))
    try:
        assert graph.selector.value == "latency"
        assert graph.wait(WAIT_S) and graph.state == "done", graph.error
        stats = graph.stats
        assert isinstance(stats, graph_module.NodeStats)
        state = _served_state(graph)
        overlay = state["overlay"]
        assert overlay["metric"] == "latency" and overlay["kind"] == "sequential" and overlay["unit"] == "ms"
        graph_nodes = {n.name for n in onnx.load(str(mlp_onnx)).graph.node}
        drawn = {name: node for name, node in overlay["nodes"].items() if name in graph_nodes}
        assert drawn and all(node["color"].startswith("#") for node in drawn.values())
        assert sum(node["value"] for node in drawn.values()) == pytest.approx(stats.total_ms, rel=0.05)
        assert [s["color"] for s in overlay["scale"]] == ["#fde725", "#440154"]  # the legend's two ends
        rows = graph.node_table.rows
        assert rows and rows[0]["value"] == max(r["value"] for r in rows)  # top N by time
        assert {"name", "op_type", "module", "value", "share"} <= set(rows[0])
        assert graph.overlay_box.layout.display == "flex" and graph.time_figure.data[0].type == "bar"
        assert "latency on" in graph.overlay_status.value
        graph.selector.value = None  # the selector drives the trait, and "none" clears the drawing
        assert graph.overlay is None and _served_state(graph)["overlay"] is None and graph.node_table.rows == []
    finally:
        graph.close()


def test_switching_metrics_measured_together_redraws_from_memory(
        mlp_onnx: Path, mlp: wb.ModelCase, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    real = graph_module.node_stats

    def counting(*args, metrics, **kwargs):
        calls.append(tuple(metrics))
        return real(*args, metrics=metrics, **kwargs)

    monkeypatch.setattr(graph_module, "node_stats", counting)
    graph = GraphInspector(mlp_onnx, "provider", inputs=mlp.make_inputs(batch=2), netron=False)
    try:
        assert graph.wait(WAIT_S) and graph.stats is not None
        for metric in ("precision", "latency", "provider"):
            graph.overlay = metric
            assert not graph._stats_worker.busy  # drawn at once, nothing measured
            assert graph.stats is not None and graph.node_table.columns[3][1].startswith(metric)
        assert len(calls) == 1 and set(calls[0]) == {"latency", "provider", "precision"}
        assert {r["value"] for r in graph.node_table.rows} == {"CPUExecutionProvider"}
    finally:
        graph.close()


def test_a_new_config_is_measured_again_off_the_main_thread(
        mlp_onnx: Path, mlp: wb.ModelCase, monkeypatch: pytest.MonkeyPatch) -> None:
    real = graph_module.node_stats
    seen: list[tuple[str, str]] = []
    release = threading.Event()

    def slow(onnx_model, inputs, *, config=None, **kwargs):
        seen.append((threading.current_thread().name, config.opt_level if config else "default"))
        assert release.wait(WAIT_S)
        return real(onnx_model, inputs, config=config, **kwargs)

    monkeypatch.setattr(graph_module, "node_stats", slow)
    release.set()
    graph = GraphInspector(mlp_onnx, "latency", inputs=mlp.make_inputs(batch=2), netron=False)
    try:
        assert graph.wait(WAIT_S) and graph.stats is not None
        first = graph.stats
        release.clear()
        graph.config = wb.SessionConfig(opt_level="disable")
        # returns at once: the measuring runs on the panel's worker while the old drawing stays
        assert graph._stats_worker.busy and "Measuring" in graph.overlay_status.value
        release.set()
        assert graph.wait(WAIT_S) and graph.stats is not first
        assert [name for name, _ in seen] == ["workbench-node-stats"] * 2
        assert seen[-1][1] == "disable"
        assert "disable" in graph.stats.config
    finally:
        release.set()
        graph.close()


def test_rows_centre_nodes_and_picks_in_netron_mark_rows(mlp_onnx: Path, mlp: wb.ModelCase) -> None:
    graph = GraphInspector(mlp_onnx, "latency", inputs=mlp.make_inputs(batch=2))
    try:
        assert graph.wait(WAIT_S) and graph.node_table.rows
        top = graph.node_table.sorted_rows()[0]["name"]
        graph.node_table.click(top)
        select = _served_state(graph)["select"]
        assert select["name"] == top and select["seq"] >= 1
        graph.node_table.click(top)  # the same row again: centred again
        assert _served_state(graph)["select"]["seq"] == select["seq"] + 1
        # the page reports a click on a node in Netron to its server, which tells the kernel
        other = graph.node_table.rows[-1]["name"]
        url = graph.netron.server.url + "wb-pick?" + urllib.parse.urlencode({"name": other})
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 204
        assert graph.netron.picked_node == other and graph.node_table.selected == other
    finally:
        graph.close()


def test_without_inputs_or_model_the_overlay_says_what_to_pass(mlp_onnx: Path) -> None:
    graph = GraphInspector(mlp_onnx, "latency", netron=False)
    try:
        assert graph.wait(WAIT_S)
        assert "pass inputs=" in graph.overlay_status.value and graph.stats is None
        graph.overlay = "precision"  # read from the file: needs no inputs
        assert graph.wait(WAIT_S) and graph.stats is not None
        assert {r["value"] for r in graph.node_table.rows} == {"fp32"}
    finally:
        graph.close()
    with pytest.raises(traitlets.TraitError):
        GraphInspector(netron=False).overlay = "flops"
