"""``Workbench``: the panels in tabs, wired together: export -> graph -> toggles -> diff -> sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core.case import ModelCase
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import Tolerance
from workbench.widgets._traits import OnnxFile
from workbench.widgets.export_form import ExportForm
from workbench.widgets.graph import GraphInspector
from workbench.widgets.live_diff import LiveDiff
from workbench.widgets.sweep import LatencySweep
from workbench.widgets.toggles import SessionToggles

TAB_TITLES = ("1 Export", "2 Graph", "3 Compare", "4 Latency")
TAB_NAMES = ("export", "graph", "compare", "latency")


def _tab_name(index: int | None) -> str:
    return TAB_NAMES[index or 0]


class Workbench(widgets.VBox):
    """One dashboard for a model: Export, Graph (tables + Netron), Compare (session toggles above
    the live PyTorch-vs-ORT diff, with size sliders) and Latency (sweep).

        >>> Workbench(model, example_inputs, spec=spec)
        >>> Workbench.from_case(wb.zoo.get("text_classifier", smoke=True))

    The export's ``onnx_model`` feeds the graph, the diff and the sweep; the toggles' ``config``
    feeds the diff, the graph's overlay (measured again when it changes) and is offered to the sweep. Each panel is an attribute (``export``, ``graph``,
    ``toggles``, ``diff``, ``sweep``) and works on its own too.
    """

    onnx_model = OnnxFile("", help="The exported ONNX file the panels follow ('' before an export).")
    tab = traitlets.Enum(TAB_NAMES, "export", help="The tab shown: export, graph, compare or latency (follows the "
                                                   "tab bar, and moves it).")

    def __init__(self, model: nn.Module, example_inputs: Any, *, spec: ExportSpec | None = None,
                 out: str | Path | None = None, input_factory: Callable[..., Any] | None = None,
                 tolerance: Tolerance = "fp32", config: SessionConfig | None = None) -> None:
        self.export = ExportForm(model, example_inputs, spec=spec, out=out)
        inputs_from = {"spec": spec, "example_inputs": self.export.example_inputs, "input_factory": input_factory}
        self.toggles = SessionToggles(config)
        # The overlay (time, error, provider, precision per node) runs at the export's example inputs
        # under the toggles' config, and against the model for the error.
        self.graph = GraphInspector(model=model, inputs=self.export.example_inputs, config=self.toggles.config)
        self.diff = LiveDiff(model, tolerance=tolerance, config=self.toggles.config, **inputs_from)
        self.sweep = LatencySweep(model, extra_config=self.toggles.config, **inputs_from)
        self.tabs = widgets.Tab(children=[self.export, self.graph, widgets.VBox([self.toggles, self.diff]), self.sweep])
        for i, title in enumerate(TAB_TITLES):
            self.tabs.set_title(i, title)
        self.tabs.add_class("wb-tabs")
        super().__init__(children=[self.tabs])
        self.add_class("wb-workbench")
        self._links = [
            traitlets.dlink((self.export, "onnx_model"), (self, "onnx_model")),
            traitlets.dlink((self, "onnx_model"), (self.graph, "onnx_model")),
            traitlets.dlink((self, "onnx_model"), (self.diff, "onnx_model")),
            traitlets.dlink((self, "onnx_model"), (self.sweep, "onnx_model")),
            # Both ways: the toggles are the diff's controls, so setting diff.config moves them too.
            traitlets.link((self.toggles, "config"), (self.diff, "config")),
            traitlets.dlink((self.toggles, "config"), (self.sweep, "extra_config")),
            traitlets.dlink((self.toggles, "config"), (self.graph, "config")),
            traitlets.link((self.tabs, "selected_index"), (self, "tab"),
                           transform=(_tab_name, TAB_NAMES.index)),
        ]
        self.export.observe(self._reload_after_a_reexport, names="result")

    @classmethod
    def from_case(cls, case: ModelCase, *, out: str | Path | None = None) -> Workbench:
        """The dashboard of a ``ModelCase`` (e.g. ``wb.zoo.get(name)``): its model, example inputs,
        spec, input maker, tolerance and session config."""
        return cls(case.model, case.example_inputs, spec=case.spec, out=out, input_factory=case.input_factory,
                   tolerance=case.tolerance, config=case.config)

    def _reload_after_a_reexport(self, change: dict[str, Any]) -> None:
        """A new export to the same file changes no trait: reload the panels that read the file."""
        old, new = change["old"], change["new"]
        if old is not None and new is not None and str(old.out) == str(new.out) and not new.cached:
            self.graph.reload()
            self.diff.refresh()

    def select(self, name: str) -> None:
        """Show a tab by panel name: export, graph, compare or latency (the same as setting ``tab``)."""
        self.tab = name

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every panel's background work is done (for scripts and tests)."""
        return all(p.wait(timeout) for p in (self.export, self.graph, self.diff, self.sweep))

    def close(self) -> None:
        for panel in (self.export, self.graph, self.toggles, self.diff, self.sweep):
            panel.close()
        super().close()

    def __repr__(self) -> str:
        return f"Workbench({type(self.export.model).__name__}, onnx_model={self.onnx_model!r})"
