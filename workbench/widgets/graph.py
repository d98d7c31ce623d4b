"""``GraphInspector``: ``wb.summarize`` of an ONNX file as the summary's own tables and an op-type bar
chart, and the graph drawn by Netron inside the notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets

from workbench.core._format import esc
from workbench.core.graph import ModelSummary, summarize
from workbench.viz import op_histogram_figure
from workbench.widgets._base import LatestWorker, Panel
from workbench.widgets._figures import FigureSlot, ResizeNudge
from workbench.widgets._traits import OnnxFile
from workbench.widgets.netron import NetronView

_NO_MODEL = "No model yet: export one, or pass an ONNX file."


class GraphInspector(Panel):
    """The summary's tables (facts, inputs/outputs with dims, parameters, operators), the op
    histogram as a bar chart and Netron's drawing of ``onnx_model``. Follows ``onnx_model``;
    ``reload()`` re-reads the same file."""

    onnx_model = OnnxFile("", help="The ONNX file inspected ('' for none).")
    summary = traitlets.Instance(ModelSummary, allow_none=True, help="wb.summarize(onnx_model), once loaded.")

    def __init__(self, onnx_model: str | Path = "", *, netron: bool = True, netron_height: int = 560) -> None:
        self._worker: LatestWorker[ModelSummary] = LatestWorker("workbench-summarize")
        self._closed = False
        # The summary's tables scroll inside the height of the chart, so Netron stays in view below.
        self.tables = widgets.HTML(layout=widgets.Layout(width="42%", min_width="320px", max_height="440px",
                                                         overflow="auto"))
        self.tables.add_class("wb-graph-tables")
        self.ops_figure = FigureSlot("ops", width="58%")
        self.netron = NetronView(height=netron_height) if netron else None
        body = [widgets.HBox([self.tables, self.ops_figure])]
        if self.netron is not None:
            body.append(self.netron)
        super().__init__(children=[widgets.HTML("<b>Graph</b>"), self.status, *body, ResizeNudge()])
        self.add_class("wb-graph-inspector")
        self._set_state("idle", _NO_MODEL)
        self.onnx_model = onnx_model

    @traitlets.observe("onnx_model")
    def _summarize_the_new_file(self, change: dict[str, Any]) -> None:
        self.reload()

    def reload(self) -> None:
        """Summarize ``onnx_model`` again (off the main thread) and redraw the tables, chart and Netron."""
        onnx_model = self.onnx_model
        if self._closed:
            return
        if not onnx_model:
            self.summary = None
            if self.netron is not None:
                self.netron.onnx_model = ""
            self._set_state("idle", _NO_MODEL)
            return
        self._set_state("running", f"Reading <code>{esc(onnx_model)}</code>\u2026")
        self._worker.submit(lambda: summarize(onnx_model), lambda s: self._show(onnx_model, s),
                            lambda exc: self._show_failure(onnx_model, exc))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the summary is shown (for scripts and tests)."""
        return self._worker.wait(timeout)

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

    def close(self) -> None:
        """Stop Netron's server and close the panel; a summary still loading is then dropped."""
        self._closed = True
        if self.netron is not None:
            self.netron.close()
        super().close()

    def __repr__(self) -> str:
        return f"GraphInspector({self.onnx_model!r}, state={self.state!r})"
