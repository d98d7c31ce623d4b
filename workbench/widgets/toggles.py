"""``SessionToggles``: the ONNX Runtime session settings as controls; ``config`` is a ``SessionConfig``."""

from __future__ import annotations

import os
from typing import Any

import ipywidgets as widgets
import traitlets

from workbench.core.session import EXECUTION_MODES, OPT_LEVELS, SessionConfig
from workbench.core._format import esc
from workbench.widgets._base import Panel, shows_errors

_CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build has, in its priority order."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


class SessionToggles(Panel):
    """Providers (checkboxes from the providers ONNX Runtime has here, so a misspelling cannot
    happen), optimization level, intra-/inter-op threads and execution mode.

    ``config`` follows the controls; setting ``config`` moves the controls.
    """

    config = traitlets.Instance(SessionConfig, help="The session configuration the controls describe.")

    def __init__(self, config: SessionConfig | None = None, *, providers: list[str] | None = None) -> None:
        config = config if config is not None else SessionConfig()
        self.available = list(providers) if providers is not None else available_providers()
        self.provider_boxes = {
            name: widgets.Checkbox(value=name in config.providers or name == _CPU, indent=False,
                                   description=name.replace("ExecutionProvider", ""), disabled=name == _CPU,
                                   tooltip=name + (" (always used as the fallback)" if name == _CPU else ""),
                                   layout=widgets.Layout(width="auto"))
            for name in self.available
        }
        self.opt_level = widgets.ToggleButtons(options=list(OPT_LEVELS), value=config.opt_level,
                                               tooltips=["no graph optimizations", "constant folding, redundant nodes",
                                                         "plus node fusions", "plus layout optimizations"],
                                               style={"button_width": "80px"})
        self.opt_level.add_class("wb-opt-level")
        limit = max(64, 2 * (os.cpu_count() or 1))
        self.intra_op_threads = widgets.BoundedIntText(value=config.intra_op_threads, min=0, max=limit,
                                                       layout=widgets.Layout(width="70px"))
        self.inter_op_threads = widgets.BoundedIntText(value=config.inter_op_threads, min=0, max=limit,
                                                       layout=widgets.Layout(width="70px"))
        self.execution_mode = widgets.ToggleButtons(options=list(EXECUTION_MODES), value=config.execution_mode,
                                                    style={"button_width": "90px"})
        rows = [
            _row("Providers", widgets.HBox(list(self.provider_boxes.values()))),
            _row("Optimization", self.opt_level),
            _row("Threads", widgets.HBox([widgets.Label("intra-op"), self.intra_op_threads,
                                          widgets.Label("inter-op"), self.inter_op_threads,
                                          widgets.HTML("<span style='color:#6e7781'>(0: ONNX Runtime chooses)</span>")])),
            _row("Execution", self.execution_mode),
        ]
        super().__init__(children=[widgets.HTML("<b>ONNX Runtime session</b>"), *rows, self.status])
        self.add_class("wb-session-toggles")
        self._syncing = False
        self.config = config
        for control in [*self.provider_boxes.values(), self.opt_level, self.intra_op_threads,
                        self.inter_op_threads, self.execution_mode]:
            control.observe(self._follow_the_controls, names="value")

    def config_from_controls(self) -> SessionConfig:
        """The ``SessionConfig`` the controls show now (checked against the rules of ``SessionConfig``)."""
        providers = [name for name, box in self.provider_boxes.items() if box.value and name != _CPU]
        return self.config.replace(providers=tuple(providers + [_CPU]), opt_level=self.opt_level.value,
                                   intra_op_threads=int(self.intra_op_threads.value),
                                   inter_op_threads=int(self.inter_op_threads.value),
                                   execution_mode=self.execution_mode.value)

    @shows_errors
    def _follow_the_controls(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.config = self.config_from_controls()

    @traitlets.observe("config")
    def _move_the_controls(self, change: dict[str, Any]) -> None:
        config: SessionConfig = change["new"]
        unknown = [p for p in config.providers if p not in self.provider_boxes]
        self._syncing = True
        try:
            for name, box in self.provider_boxes.items():
                box.value = name in config.providers or name == _CPU
            self.opt_level.value = config.opt_level
            self.intra_op_threads.value = config.intra_op_threads
            self.inter_op_threads.value = config.inter_op_threads
            self.execution_mode.value = config.execution_mode
        finally:
            self._syncing = False
        text = f"Session config <code>{esc(config.label())}</code>"
        if unknown:
            text += (f"<br>Not available in this onnxruntime build: {esc(', '.join(unknown))} "
                     "(ONNX Runtime would fall back to CPU).")
        self._set_state("done", text)

    def __repr__(self) -> str:
        return f"SessionToggles({self.config!r})"


def _row(label: str, control: widgets.Widget) -> widgets.HBox:
    return widgets.HBox([widgets.Label(label, layout=widgets.Layout(width="100px")), control],
                        layout=widgets.Layout(align_items="center"))
