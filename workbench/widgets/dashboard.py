"""``Workbench``: the panels in tabs, wired together: export -> graph -> toggles -> diff -> sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core.spec import ExportSpec
from workbench.widgets.export_form import ExportForm
from workbench.widgets.graph import GraphInspector
from workbench.widgets.live_diff import LiveDiff
from workbench.widgets.sweep import LatencySweep
from workbench.widgets.toggles import SessionToggles

TAB_TITLES = ("1 Export", "2 Graph", "3 Compare", "4 Latency")


class Workbench(widgets.VBox):
    """One dashboard for a model: Export, Graph (tables + Netron), Compare (session toggles above
    the live PyTorch-vs-ORT diff, with size sliders) and Latency (sweep).

    The export's ``path`` feeds the graph, the diff and the sweep; the toggles' ``value`` feeds the
    diff and is offered to the sweep. Each panel is an attribute (``export``, ``graph``,
    ``toggles``, ``diff``, ``sweep``) and works on its own too.
    """

    path = traitlets.Unicode("", help="The exported ONNX file the panels follow ('' before an export).")

    def __init__(self, model: nn.Module, example_inputs: Any, spec: ExportSpec | None = None, *,
                 path: str | Path | None = None, input_factory: Callable[..., Any] | None = None,
                 tolerance: Any = "fp32") -> None:
        self.export = ExportForm(model, example_inputs, spec, path=path)
        spec_used = self.export.base_spec
        inputs = self.export.example_inputs
        self.graph = GraphInspector()
        self.toggles = SessionToggles()
        self.diff = LiveDiff(model, inputs=inputs, spec=spec_used, example_inputs=inputs, tolerance=tolerance,
                             config=self.toggles.value)
        self.sweep = LatencySweep(model, spec=spec_used, example_inputs=inputs, input_factory=input_factory,
                                  extra_config=self.toggles.value)
        self.tabs = widgets.Tab(children=[self.export, self.graph, widgets.VBox([self.toggles, self.diff]), self.sweep])
        for i, title in enumerate(TAB_TITLES):
            self.tabs.set_title(i, title)
        self.tabs.add_class("wb-tabs")
        super().__init__(children=[self.tabs])
        self.add_class("wb-workbench")
        self._links = [
            traitlets.dlink((self.export, "path"), (self, "path")),
            traitlets.dlink((self, "path"), (self.graph, "path")),
            traitlets.dlink((self, "path"), (self.diff, "onnx_path")),
            traitlets.dlink((self, "path"), (self.sweep, "onnx_path")),
            traitlets.dlink((self.toggles, "value"), (self.diff, "config")),
            traitlets.dlink((self.toggles, "value"), (self.sweep, "extra_config")),
        ]
        self.export.observe(self._reexported, names="result")

    def _reexported(self, change: dict[str, Any]) -> None:
        """A new export to the same path changes no trait: reload the panels that read the file."""
        old, new = change["old"], change["new"]
        if old is not None and new is not None and str(old.path) == str(new.path) and not new.cached:
            self.graph.reload()
            self.diff.refresh()

    def select(self, name: str) -> None:
        """Show a tab by panel name: export, graph, compare or latency."""
        names = ["export", "graph", "compare", "latency"]
        self.tabs.selected_index = names.index(name)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every panel's background work is done (for scripts and tests)."""
        return all(p.wait(timeout) for p in (self.export, self.graph, self.diff, self.sweep))

    def close(self) -> None:
        for panel in (self.export, self.graph, self.toggles, self.diff, self.sweep):
            panel.close()
        super().close()

    def __repr__(self) -> str:
        return f"Workbench({type(self.export.model).__name__}, path={self.path!r})"
