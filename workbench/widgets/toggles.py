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

#: Providers this build may list that cannot run a model on this machine, with the reason.
NOT_LOCAL = {"AzureExecutionProvider": "sends the inputs to a model served on Azure; it does not run this model here"}
#: Providers worth showing (greyed) when this build lacks them, with how to get them.
WORTH_SHOWING = {"CUDAExecutionProvider": "not in this onnxruntime build: install onnxruntime-gpu on a machine "
                                          "with an NVIDIA GPU (see gpu/)"}


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build has, in its priority order."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def provider_choices(available: list[str]) -> dict[str, str]:
    """Provider -> why it cannot be picked here (``""`` where it can): the build's providers in its
    order, those that cannot run a model here (Azure) greyed, then the usual ones it lacks."""
    choices = {name: NOT_LOCAL.get(name, "") for name in available}
    choices.update({name: why for name, why in WORTH_SHOWING.items() if name not in choices})
    return choices


def _provider_box(name: str, why: str, checked: bool) -> widgets.Checkbox:
    tooltip = name + (" (always used, as the fallback)" if name == _CPU else f": {why}" if why else "")
    return widgets.Checkbox(value=checked or name == _CPU, indent=False, description=name.replace("ExecutionProvider", ""),
                            disabled=name == _CPU or bool(why), tooltip=tooltip, layout=widgets.Layout(width="auto"))


class SessionToggles(Panel):
    """Providers (checkboxes from the providers ONNX Runtime has here, so a misspelling cannot
    happen), optimization level, intra-/inter-op threads and execution mode.

    ``config`` follows the controls; setting ``config`` moves the controls.
    """

    config = traitlets.Instance(SessionConfig, help="The session configuration the controls describe.")

    def __init__(self, config: SessionConfig | None = None, *, providers: list[str] | None = None) -> None:
        config = config if config is not None else SessionConfig()
        self.available = list(providers) if providers is not None else available_providers()
        #: Provider -> why it is greyed ("" where it can be ticked).
        self.unusable = provider_choices(self.available)
        self.provider_boxes = {name: _provider_box(name, why, name in config.providers)
                               for name, why in self.unusable.items()}
        notes = "".join(f"<li><b>{esc(n.replace('ExecutionProvider', ''))}</b> {esc(why)}</li>"
                        for n, why in self.unusable.items() if why)
        self.provider_notes = widgets.HTML(f"<ul style='margin: 0; padding-left: 18px; color: #6e7781; font-size: 12px;"
                                           f" line-height: 1.4;'>{notes}</ul>" if notes else "")
        self.provider_notes.add_class("wb-provider-notes")
        self.opt_level = widgets.ToggleButtons(options=list(OPT_LEVELS), value=config.opt_level,
                                               tooltips=["no graph optimizations", "constant folding, redundant nodes",
                                                         "plus node fusions", "plus layout optimizations"],
                                               style={"button_width": "96px"})
        self.opt_level.add_class("wb-opt-level")
        limit = max(64, 2 * (os.cpu_count() or 1))
        self.intra_op_threads = widgets.BoundedIntText(value=config.intra_op_threads, min=0, max=limit,
                                                       layout=_fixed(width="70px"))
        self.inter_op_threads = widgets.BoundedIntText(value=config.inter_op_threads, min=0, max=limit,
                                                       layout=_fixed(width="70px"))
        self.execution_mode = widgets.ToggleButtons(options=list(EXECUTION_MODES), value=config.execution_mode,
                                                    style={"button_width": "104px"})
        rows = [
            _row("Providers", widgets.VBox([widgets.HBox(list(self.provider_boxes.values()),
                                                         layout=widgets.Layout(flex_flow="row wrap")),
                                            self.provider_notes])),
            _row("Optimization", self.opt_level),
            _row("Threads", widgets.HBox([_pair("intra-op", self.intra_op_threads),
                                          _pair("inter-op", self.inter_op_threads),
                                          _text("(0: ONNX Runtime chooses)", muted=True)],
                                         layout=widgets.Layout(flex_flow="row wrap", align_items="center"))),
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
        ticked = {name for name, box in self.provider_boxes.items() if box.value and name != _CPU}
        kept = [p for p in self.config.providers if p in ticked or (p not in self.provider_boxes and p != _CPU)]
        added = [name for name in self.provider_boxes if name in ticked and name not in kept]
        return self.config.replace(providers=tuple(kept + added + [_CPU]), opt_level=self.opt_level.value,
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
        unusable = [p for p in config.providers if p not in self.available or self.unusable.get(p)]
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
        text = f"Sessions use <code>{esc(config.label())}</code>: {esc(describe_config(config))}."
        if unusable:
            text += (f"<br>Cannot run here: {esc(', '.join(unusable))} (ONNX Runtime would fall back to CPU; "
                     "the greyed providers say why).")
        self._set_state("done", text)

    def __repr__(self) -> str:
        return f"SessionToggles({self.config!r})"


def describe_config(config: SessionConfig) -> str:
    """The config in words, for the status line (the figures' titles carry its short label)."""
    providers = " then ".join(p.replace("ExecutionProvider", "") for p in config.providers)
    threads = ("threads chosen by ONNX Runtime" if not (config.intra_op_threads or config.inter_op_threads) else
               f"{config.intra_op_threads or 'auto'} intra-op and {config.inter_op_threads or 'auto'} inter-op threads")
    return f"{providers}, {config.opt_level} graph optimizations, {threads}, {config.execution_mode} execution"


def _fixed(**layout: str) -> widgets.Layout:
    """A layout that a narrow flex row never shrinks below its content (it wraps the item instead):
    a shrunk label was drawn under the next field ("intra-op" cut by its input at 1000 px)."""
    return widgets.Layout(flex="0 0 auto", min_width="max-content", **layout)


def _text(text: str, *, muted: bool = False) -> widgets.HTML:
    """A label that keeps its whole text on one line (a ``widgets.Label`` is cut with an ellipsis
    when the row is narrow, and a shrinking one overlapped the next field)."""
    colour = "color: #6e7781; " if muted else ""
    label = widgets.HTML(f"<span style='{colour}white-space: nowrap; margin: 0 4px;'>{esc(text)}</span>",
                         layout=_fixed())
    label.add_class("wb-label")
    return label


def _pair(label: str, field: widgets.Widget) -> widgets.HBox:
    """A label and its field, kept together on one line when the row wraps."""
    return widgets.HBox([_text(label), field], layout=_fixed(align_items="center", margin="0 8px 0 0"))


def _row(label: str, control: widgets.Widget) -> widgets.HBox:
    return widgets.HBox([widgets.Label(label, layout=widgets.Layout(width="100px")), control],
                        layout=widgets.Layout(align_items="center"))
