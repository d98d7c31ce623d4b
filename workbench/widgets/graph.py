"""``GraphInspector``: ``wb.summarize`` of an ONNX file as tables and an op-type bar chart, and
the graph drawn by Netron inside the notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets

from workbench.core.graph import ModelSummary, TensorInfo, summarize
from workbench.viz import op_histogram_figure
from workbench.widgets._base import FigureSlot, LatestWorker, Panel, ResizeNudge, escape
from workbench.widgets.netron import NetronView


def _io_rows(kind: str, items: list[TensorInfo]) -> str:
    rows = []
    for t in items:
        dims = "?" if t.dims is None else ", ".join(
            f"<i>{escape(d)}</i>" if isinstance(d, str) else ("?" if d is None else str(d)) for d in t.dims)
        rows.append(f"<tr><td>{kind}</td><td><code>{escape(t.name)}</code></td><td>{escape(t.dtype)}</td>"
                    f"<td>[{dims}]</td></tr>")
    return "".join(rows)


def summary_html(summary: ModelSummary) -> str:
    """The model's facts, its inputs/outputs with dims (symbolic ones in italics) and its
    parameters by dtype, as HTML tables."""
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(summary.opsets.items()))
    check = "valid" if summary.checker_ok else ("not run" if summary.checker_ok is None else "INVALID")
    facts = [("file", f"<code>{escape(summary.path)}</code>"), ("checker", check), ("opsets", escape(opsets)),
             ("producer", escape(summary.producer or "?")), ("nodes", summary.node_count),
             ("size", f"{summary.file_bytes / 2**20:.2f} MiB")]
    if summary.external_data:
        facts.append(("external data", escape(", ".join(summary.external_data))))
    fact_rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in facts)
    io = _io_rows("input", summary.inputs) + _io_rows("output", summary.outputs)
    params = "".join(f"<tr><td>{escape(dtype)}</td><td>{summary.parameter_count_by_dtype.get(dtype, 0):,}</td>"
                     f"<td>{nbytes / 2**20:.2f} MiB</td></tr>" for dtype, nbytes in summary.parameter_bytes.items())
    message = (f"<pre style='white-space:pre-wrap;color:#cf222e'>{escape(summary.checker_message)}</pre>"
               if summary.checker_message else "")
    table = "<table class='wb-table' style='margin-bottom:8px'>"
    return (f"{table}{fact_rows}</table>{message}"
            f"<b>Inputs and outputs</b>{table}<tr><th></th><th>name</th><th>dtype</th><th>dims</th></tr>{io}</table>"
            f"<b>Parameters</b> ({summary.parameter_count:,}){table}<tr><th>dtype</th><th>count</th><th>size</th></tr>"
            f"{params or '<tr><td colspan=3>none</td></tr>'}</table>")


class GraphInspector(Panel):
    """Tables (inputs/outputs with dims, parameters by dtype), the op histogram as a bar chart and
    Netron's drawing of ``path``. Follows ``path``; ``reload()`` re-reads the same file."""

    path = traitlets.Unicode("", help="The ONNX file inspected ('' for none).")
    summary = traitlets.Instance(ModelSummary, allow_none=True, help="wb.summarize(path), once loaded.")

    def __init__(self, path: str | Path = "", *, netron: bool = True, netron_height: int = 560) -> None:
        self._worker: LatestWorker[ModelSummary] = LatestWorker("workbench-summarize")
        self.tables = widgets.HTML(layout=widgets.Layout(width="42%", min_width="320px"))
        self.tables.add_class("wb-graph-tables")
        self.ops_figure = FigureSlot("ops", width="58%")
        self.netron = NetronView(height=netron_height) if netron else None
        body = [widgets.HBox([self.tables, self.ops_figure])]
        if self.netron is not None:
            body.append(self.netron)
        super().__init__(children=[widgets.HTML("<b>Graph</b>"), self.status, *body, ResizeNudge()])
        self.add_class("wb-graph-inspector")
        self._set_state("idle", "No model yet: export one, or pass a path.")
        if path:
            self.path = str(path)

    @traitlets.observe("path")
    def _path_changed(self, change: dict[str, Any]) -> None:
        self.reload()

    def reload(self) -> None:
        """Summarize ``path`` again (off the main thread) and redraw the tables, chart and Netron."""
        path = self.path
        if not path:
            self.summary = None
            if self.netron is not None:
                self.netron.path = ""
            self._set_state("idle", "No model yet: export one, or pass a path.")
            return
        self._set_state("running", f"Reading <code>{escape(path)}</code>\u2026")
        self._worker.submit(lambda: summarize(path), lambda s: self._show(path, s),
                            lambda exc: self._failed(path, exc))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the summary is shown (for scripts and tests)."""
        return self._worker.wait(timeout)

    def _show(self, path: str, summary: ModelSummary) -> None:
        self.tables.value = summary_html(summary)
        self.ops_figure.show(op_histogram_figure(summary, top=20))
        if self.netron is not None:
            self.netron.show(path, extra_files=list(summary.external_data))
        self.summary = summary
        self._set_state("done", f"<code>{escape(Path(path).name)}</code>: {summary.node_count} nodes, "
                                f"{len(summary.op_histogram)} op types, {summary.parameter_count:,} parameters")

    def _failed(self, path: str, exc: BaseException) -> None:
        self.summary = None
        self._fail(exc, title=f"Could not read {Path(path).name}")

    def close(self) -> None:
        """Stop Netron's server and close the panel."""
        if self.netron is not None:
            self.netron.close()
        super().close()

    def __repr__(self) -> str:
        return f"GraphInspector({self.path!r}, state={self.state!r})"
