"""``Workbench``: the panels in tabs, wired together: export -> graph -> toggles -> diff -> sweep,
the tuner (whose "Use this config" moves the toggles) and the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core._format import esc
from workbench.core.case import ModelCase
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import Tolerance
from workbench.widgets._traits import OnnxFile
from workbench.widgets.export_form import ExportForm
from workbench.widgets.graph import GraphInspector
from workbench.widgets.live_diff import LiveDiff
from workbench.widgets.serve import ServePanel
from workbench.widgets.sweep import LatencySweep
from workbench.widgets.toggles import SessionToggles
from workbench.widgets.tuner import Tuner

TAB_TITLES = ("1 Export", "2 Graph", "3 Compare", "4 Latency", "5 Tune", "6 Serve")
TAB_NAMES = ("export", "graph", "compare", "latency", "tune", "serve")


def _tab_name(index: int | None) -> str:
    return TAB_NAMES[index or 0]


class Workbench(widgets.VBox):
    """One dashboard for a model: Export, Graph (tables + Netron), Compare (session toggles above
    the live PyTorch-vs-ORT diff, with size sliders), Latency (sweep), Tune and Serve.

        >>> Workbench(model, example_inputs, spec=spec)
        >>> Workbench.from_case(wb.zoo.get("text_classifier", smoke=True))

    The export's ``onnx_model`` feeds the graph, the diff, the sweep, the tuner and the server; the
    toggles' ``config`` feeds the diff, the graph's overlay (measured again when it changes), the
    server, and is offered to the sweep. The tuner's "Use this config" sets the toggles to the
    candidate's config and, where the candidate is another file (an INT8 one, say), makes the panels
    follow that file (``onnx_model``) with the diff checking it at the tune's accuracy gate; the next
    export puts the exported file (and the diff's tolerance) back. Each panel is an attribute
    (``export``, ``graph``, ``toggles``, ``diff``, ``sweep``, ``tuner``, ``serve``) and works on its own too.
    """

    onnx_model = OnnxFile("", help="The ONNX file the panels follow: the export, or the tuned file put to use "
                                   "('' before an export).")
    tab = traitlets.Enum(TAB_NAMES, "export", help="The tab shown: export, graph, compare, latency, tune or serve "
                                                   "(follows the tab bar, and moves it).")

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
        self.tuner = Tuner(model, **inputs_from)
        self.serve = ServePanel(config=self.toggles.config)
        self._tolerance_before_tune: Tolerance | None = None
        self.tabs = widgets.Tab(children=[self.export, self.graph, widgets.VBox([self.toggles, self.diff]), self.sweep,
                                          self.tuner, self.serve])
        for i, title in enumerate(TAB_TITLES):
            self.tabs.set_title(i, title)
        self.tabs.add_class("wb-tabs")
        #: Says which file and config the panels follow when a tuned one was put to use ('' otherwise).
        self.in_use = widgets.HTML("")
        self.in_use.add_class("wb-in-use")
        super().__init__(children=[self.in_use, self.tabs])
        self.add_class("wb-workbench")
        self._links = [
            traitlets.dlink((self.export, "onnx_model"), (self, "onnx_model")),
            *(traitlets.dlink((self, "onnx_model"), (panel, "onnx_model"))
              for panel in (self.graph, self.diff, self.sweep, self.serve)),
            # The tuner tunes the export, never a tuned file.
            traitlets.dlink((self.export, "onnx_model"), (self.tuner, "onnx_model")),
            # Both ways: the toggles are the diff's controls, so setting diff.config moves them too.
            traitlets.link((self.toggles, "config"), (self.diff, "config")),
            traitlets.dlink((self.toggles, "config"), (self.sweep, "extra_config")),
            traitlets.dlink((self.toggles, "config"), (self.graph, "config")),
            traitlets.dlink((self.toggles, "config"), (self.serve, "config")),
            traitlets.link((self.tabs, "selected_index"), (self, "tab"),
                           transform=(_tab_name, TAB_NAMES.index)),
        ]
        self.export.observe(self._reload_after_a_reexport, names="result")
        self.export.observe(self._follow_the_export_again, names="state")
        self.tuner.observe(self._use_the_tuned_config, names=["config", "tuned_model"])
        self.observe(self._back_to_the_export, names="onnx_model")
        self.toggles.observe(self._say_what_is_in_use, names="config")

    @classmethod
    def from_case(cls, case: ModelCase, *, out: str | Path | None = None) -> Workbench:
        """The dashboard of a ``ModelCase`` (e.g. ``wb.zoo.get(name)``): its model, example inputs,
        spec, input maker, tolerance and session config."""
        return cls(case.model, case.example_inputs, spec=case.spec, out=out, input_factory=case.input_factory,
                   tolerance=case.tolerance, config=case.config)

    def _follow_the_export_again(self, change: dict[str, Any]) -> None:
        """An export finished (a cache hit too): the panels follow the exported file again, not a
        tuned one put to use."""
        if change["new"] == "done" and self.export.onnx_model and self.onnx_model != self.export.onnx_model:
            self.onnx_model = self.export.onnx_model

    def _reload_after_a_reexport(self, change: dict[str, Any]) -> None:
        """A new export to the same file changes no trait: reload the panels that read the file."""
        old, new = change["old"], change["new"]
        if old is not None and new is not None and str(old.out) == str(new.out) and not new.cached:
            self.graph.reload()
            self.diff.refresh()
            self.serve.reload()  # a running server restarts on the rewritten file

    def _use_the_tuned_config(self, change: dict[str, Any]) -> None:
        """The tuner's "Use this config": the toggles take its config (the diff, graph, sweep and
        server follow them); a tuned file other than the export becomes the panels' ``onnx_model``,
        and the diff checks it at the gate it passed (an INT8 file fails fp32's tolerance by design)."""
        config, tuned = self.tuner.config, self.tuner.tuned_model
        if config is None or not tuned:
            return
        if tuned != self.export.onnx_model:
            if self._tolerance_before_tune is None:
                self._tolerance_before_tune = self.diff.tolerance
            self.diff.tolerance = self.tuner.gate
        self.onnx_model = tuned
        self.toggles.config = config
        self._say_what_is_in_use()

    def _say_what_is_in_use(self, change: dict[str, Any] | None = None) -> None:
        """The line above the tabs: the tuned config (and file) the panels follow, while they do."""
        config, tuned = self.tuner.config, self.tuner.tuned_model
        if config is None or self.toggles.config != config:
            self.in_use.value = ""
            return
        where = "" if self.onnx_model != tuned or tuned == self.export.onnx_model else (
            f" and the tuned file <code>{esc(Path(tuned).name)}</code> (checked at the tune's gate "
            f"<code>{esc(self.tuner.gate)}</code>); the next export puts the exported file back")
        self.in_use.value = (f"<div style='margin: 2px 0 6px; font-size: 13px; color: #1a7f37;'>Tuned config in use: "
                             f"<code>{esc(config.label())}</code>{where}.</div>")

    def _back_to_the_export(self, change: dict[str, Any]) -> None:
        """The panels follow the export again: the diff's tolerance from before the tune comes back."""
        if change["new"] == self.export.onnx_model and self._tolerance_before_tune is not None:
            self.diff.tolerance, self._tolerance_before_tune = self._tolerance_before_tune, None
        self._say_what_is_in_use()

    def select(self, name: str) -> None:
        """Show a tab by panel name: export, graph, compare, latency, tune or serve (the same as setting ``tab``)."""
        self.tab = name

    def _panels(self) -> tuple[widgets.Widget, ...]:
        return (self.export, self.graph, self.toggles, self.diff, self.sweep, self.tuner, self.serve)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every panel's background work is done (for scripts and tests)."""
        return all(p.wait(timeout) for p in self._panels() if p is not self.toggles)

    def close(self) -> None:
        for panel in self._panels():
            panel.close()
        super().close()

    def __repr__(self) -> str:
        return f"Workbench({type(self.export.model).__name__}, onnx_model={self.onnx_model!r})"

