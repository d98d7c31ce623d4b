"""``GraphInspector``: ``wb.summarize`` of an ONNX file as the summary's own tables and an op-type bar
chart, Netron's drawing of the graph inside the notebook, and numbers on that drawing (an overlay):
time, error, provider or precision per node from ``wb.node_stats``, with a table of the top nodes
and a chart of time by op type beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets

from workbench.core._format import esc
from workbench.core.graph import ModelSummary, summarize
from workbench.core.nodes import NodeStats, node_stats
from workbench.core.session import SessionConfig
from workbench.viz import op_histogram_figure
from workbench.viz.nodes import op_time_figure
from workbench.widgets._base import LatestWorker, Panel
from workbench.widgets._figures import FigureSlot, ResizeNudge
from workbench.widgets._traits import OnnxFile
from workbench.widgets.netron import NetronView
from workbench.widgets.netron.node_table import NodeTable, node_rows

_NO_MODEL = "No model yet: export one, or pass an ONNX file."
OVERLAYS = ("latency", "error", "provider", "precision")
#: Metrics measured together (one profiled run gives latency and provider; precision is free).
_GROUPS = {"latency": ("latency", "provider", "precision"), "provider": ("latency", "provider", "precision"),
           "precision": ("latency", "provider", "precision"), "error": ("error",)}
_NEEDS_INPUTS = "pass inputs= (a tuple of tensors the model runs on) to measure {metric} per node"


class GraphInspector(Panel):
    """The summary's tables (facts, inputs/outputs with dims, parameters, operators), the op
    histogram as a bar chart and Netron's drawing of ``onnx_model``. Follows ``onnx_model``;
    ``reload()`` re-reads the same file.

    ``overlay`` (``None``, ``"latency"``, ``"error"``, ``"provider"`` or ``"precision"``, also the
    selector above Netron) draws ``wb.node_stats(onnx_model, inputs, config=config, model=model)``
    on Netron's nodes, with the top nodes in ``node_table`` and time by op type in ``time_figure``.
    The figures are measured off the main thread, again when ``onnx_model``, ``config`` or
    ``inputs`` change; switching between metrics measured together redraws from memory.
    A click on a row centres its node in Netron; a click on a node in Netron marks its row.
    """

    onnx_model = OnnxFile("", help="The ONNX file inspected ('' for none).")
    summary = traitlets.Instance(ModelSummary, allow_none=True, help="wb.summarize(onnx_model), once loaded.")
    overlay = traitlets.Enum([None, *OVERLAYS], None, allow_none=True,
                             help="The metric drawn on the graph: None, latency, error, provider or precision.")
    config = traitlets.Instance(SessionConfig, allow_none=True, help="The session config the nodes are timed under.")
    inputs = traitlets.Any(None, help="The inputs the nodes are timed at (a tuple of tensors).")
    stats = traitlets.Instance(NodeStats, allow_none=True, help="The node_stats behind the overlay shown.")
    top_n = traitlets.Int(15, help="Rows in the node table.")

    def __init__(self, onnx_model: str | Path = "", overlay: str | None = None, *, model: Any = None,
                 inputs: Any = None, config: SessionConfig | None = None, netron: bool = True,
                 netron_height: int = 560) -> None:
        self._worker: LatestWorker[ModelSummary] = LatestWorker("workbench-summarize")
        self._stats_worker: LatestWorker[NodeStats] = LatestWorker("workbench-node-stats")
        self._stats_cache: dict[str, NodeStats] = {}
        self._closed = False
        self.model = model
        # The summary's tables scroll inside the height of the chart, so Netron stays in view below.
        self.tables = widgets.HTML(layout=widgets.Layout(flex="1 1 320px", min_width="320px", max_height="440px",
                                                         overflow="auto"))
        self.tables.add_class("wb-graph-tables")
        self.ops_figure = FigureSlot("ops", width="auto")
        self.ops_figure.layout.flex = "1.4 1 380px"  # under the tables where both do not fit (1000 px page)
        self.netron = NetronView(height=netron_height) if netron else None
        self._build_overlay_controls()
        body: list[widgets.Widget] = [widgets.HBox([self.tables, self.ops_figure],
                                                   layout=widgets.Layout(flex_flow="row wrap")), self.overlay_bar]
        if self.netron is not None:
            body.append(self.netron)
            self.netron.observe(self._mark_picked_row, names="picked_node")
        body.append(self.overlay_box)
        super().__init__(children=[widgets.HTML("<b>Graph</b>"), self.status, *body, ResizeNudge()])
        self.add_class("wb-graph-inspector")
        self._set_state("idle", _NO_MODEL)
        self.config, self.inputs = config, inputs
        self.overlay = overlay
        self.onnx_model = onnx_model
        self.observe(self._measure_again, names=["config", "inputs"])

    def _build_overlay_controls(self) -> None:
        self.selector = widgets.Dropdown(options=[("none", None), *[(m, m) for m in OVERLAYS]], value=None,
                                         description="Overlay", layout=widgets.Layout(width="220px"))
        self.selector.add_class("wb-overlay-selector")
        traitlets.link((self.selector, "value"), (self, "overlay"))
        self.overlay_status = widgets.HTML()
        self.overlay_status.add_class("wb-overlay-status")
        self.overlay_bar = widgets.HBox([self.selector, self.overlay_status])
        self.node_table = NodeTable(layout=widgets.Layout(flex="1 1 520px", min_width="320px"))
        self.node_table.observe(self._centre_selected_node, names=["selected", "clicks"])
        self.time_figure = FigureSlot("node-time", width="auto")
        self.time_figure.layout.flex, self.time_figure.layout.min_width = "1 1 420px", "320px"
        self.overlay_box = widgets.HBox([self.node_table, self.time_figure],
                                        layout=widgets.Layout(display="none", flex_flow="row wrap"))
        self.overlay_box.add_class("wb-overlay-box")

    @traitlets.observe("onnx_model")
    def _summarize_the_new_file(self, change: dict[str, Any]) -> None:
        self.reload()

    @traitlets.observe("overlay")
    def _switch_overlay(self, change: dict[str, Any]) -> None:
        self.refresh_overlay()

    def _measure_again(self, change: dict[str, Any]) -> None:
        self._stats_cache.clear()
        self.refresh_overlay()

    def reload(self) -> None:
        """Summarize ``onnx_model`` again (off the main thread) and redraw the tables, chart, Netron
        and the overlay (measured again)."""
        onnx_model = self.onnx_model
        if self._closed:
            return
        self._stats_cache.clear()
        if not onnx_model:
            self.summary = None
            if self.netron is not None:
                self.netron.onnx_model = ""
            self._set_state("idle", _NO_MODEL)
            self.refresh_overlay()
            return
        self._set_state("running", f"Reading <code>{esc(onnx_model)}</code>\u2026")
        self._worker.submit(lambda: summarize(onnx_model), lambda s: self._show(onnx_model, s),
                            lambda exc: self._show_failure(onnx_model, exc))
        self.refresh_overlay()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the summary and the overlay are shown (for scripts and tests)."""
        return self._worker.wait(timeout) and self._stats_worker.wait(timeout)

    def _show(self, onnx_model: str, summary: ModelSummary) -> None:
        if self._closed:  # closed while the summary was loading: start no server, draw nothing
            return
        self.tables.value = summary._repr_html_()
        self.ops_figure.show(op_histogram_figure(summary, top=20))
        if self.netron is not None:
            self.netron.show(onnx_model, extra_files=list(summary.external_data))
        self.summary = summary
        self._set_state("done", f"<code>{esc(Path(onnx_model).name)}</code>: {summary.node_count} nodes, "
                                f"{len(summary.ops)} op types, {summary.parameter_count:,} parameters")

    def _show_failure(self, onnx_model: str, exc: BaseException) -> None:
        if self._closed:
            return
        self.summary = None
        self._fail(exc, title=f"Could not read {Path(onnx_model).name}")

    # -- the overlay ------------------------------------------------------------------------------

    def refresh_overlay(self) -> None:
        """Draw ``overlay``: from memory when it was measured for this file, config and inputs,
        else measured on the worker first (the newest request wins)."""
        metric = self.overlay
        if self._closed:
            return
        if metric is None or not self.onnx_model:
            self._draw(None, None)
            return
        if metric in self._stats_cache:
            self._draw(metric, self._stats_cache[metric])
            return
        if metric != "precision" and self.inputs is None:
            self._overlay_message("failed", _NEEDS_INPUTS.format(metric=metric))
            self._draw(None, None, keep_message=True)
            return
        request = (self.onnx_model, self.config, self.inputs, self.model)
        group = _GROUPS[metric] if self.inputs is not None else ("precision",)
        self._overlay_message("running", f"Measuring {esc(', '.join(group))} per node\u2026")
        self._stats_worker.submit(lambda: self._measure(request, group), lambda s: self._measured(request, group, s),
                                  lambda exc: self._measure_failed(request, exc))

    @staticmethod
    def _measure(request: tuple[Any, ...], group: tuple[str, ...]) -> NodeStats:
        onnx_model, config, inputs, model = request
        return node_stats(onnx_model, inputs, config=config, model=model, metrics=group)

    def _is_current(self, request: tuple[Any, ...]) -> bool:
        onnx_model, config, inputs, model = request
        return (not self._closed and onnx_model == self.onnx_model and config == self.config
                and inputs is self.inputs and model is self.model)

    def _measured(self, request: tuple[Any, ...], group: tuple[str, ...], stats: NodeStats) -> None:
        if not self._is_current(request):
            return
        for metric in group:
            self._stats_cache[metric] = stats
        if self.overlay in group:
            self._draw(self.overlay, stats)
        else:
            self.refresh_overlay()

    def _measure_failed(self, request: tuple[Any, ...], exc: BaseException) -> None:
        if not self._is_current(request):
            return
        self._overlay_message("failed", f"Could not measure the nodes: {esc(type(exc).__name__)}: {esc(exc)}")
        self._draw(None, None, keep_message=True)

    def _draw(self, metric: str | None, stats: NodeStats | None, *, keep_message: bool = False) -> None:
        overlay = stats.overlay(metric) if stats is not None and metric is not None else None
        if self.netron is not None:
            self.netron.set_overlay(overlay)
        self.stats = stats if overlay is not None else None
        if overlay is None or stats is None or metric is None:
            self.node_table.rows = []
            self.overlay_box.layout.display = "none"
            if not keep_message:
                self._overlay_message("idle", "")
            return
        rows, columns = node_rows(stats, metric, self.top_n)
        with self.node_table.hold_sync():
            self.node_table.columns, self.node_table.rows = columns, rows
            self.node_table.sort_by, self.node_table.descending = "value", metric in ("latency", "error")
        if "latency" in stats.metrics:
            self.time_figure.show(op_time_figure(stats))
        self.overlay_box.layout.display = "flex"
        self._overlay_message("done", _overlay_summary(metric, stats, overlay))

    def _overlay_message(self, state: str, body: str) -> None:
        self.overlay_status.value = (f"<span class='wb-overlay-state' data-state='{state}' style='font-size: 12px;'>"
                                     f"{body}</span>") if body else ""

    def _centre_selected_node(self, change: dict[str, Any]) -> None:
        if self.netron is not None and self.node_table.selected:
            self.netron.select_node(self.node_table.selected)

    def _mark_picked_row(self, change: dict[str, Any]) -> None:
        self.node_table.selected = change["new"]

    def close(self) -> None:
        """Stop Netron's server and close the panel; a summary still loading is then dropped."""
        self._closed = True
        if self.netron is not None:
            self.netron.close()
        super().close()

    def __repr__(self) -> str:
        return f"GraphInspector({self.onnx_model!r}, overlay={self.overlay!r}, state={self.state!r})"


def _overlay_summary(metric: str, stats: NodeStats, overlay: dict[str, Any]) -> str:
    count = len(overlay.get("nodes") or {})
    text = f"{esc(metric)} on {count} node(s)"
    if metric == "latency":
        text += f", total {stats.total_ms:.3f} ms per run over {stats.runs} run(s) ({esc(stats.config)})"
    if metric == "error" and stats.first_divergent:
        text += f"; first divergent node: <code>{esc(stats.first_divergent)}</code>"
    # The profile's notes (fused nodes) concern time and provider; the divergence's start with "error".
    notes = [n for n in stats.notes if (metric == "error") == n.startswith("error")]
    notes += [f"{m} skipped: {why}" for m, why in stats.skipped.items() if m == metric]
    if notes:
        text += "".join(f"<br><span style='color: #57606a;'>{esc(n)}</span>" for n in notes[:3])
    return text
