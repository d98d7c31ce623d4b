"""``LiveDiff``: PyTorch vs ONNX Runtime, redrawn whenever the session config or the inputs change.

Each redraw is one ``wb.compare`` (on a session from ``wb.open_session``, kept while only the
inputs change) and the ``workbench.viz`` figures of the ``Comparison``, shown in plotly
``FigureWidget``s. The work runs off the kernel's main thread; only the newest request is shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core.compare import TOLERANCES, Comparison, compare
from workbench.core.inputs import as_input_tuple, axis_symbols, example_sizes, resize_inputs
from workbench.core.session import SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError
from workbench.viz import error_bars, error_histogram, values_scatter
from workbench.widgets._base import FigureSlot, LatestWorker, Panel, ResizeNudge, escape


def badge_html(comparison: Comparison, config: SessionConfig) -> str:
    ok = comparison.ok
    color, text = ("#1a7f37", "PASS") if ok else ("#cf222e", "FAIL")
    shapes = "; ".join(", ".join(str(list(s)) for s in sample) for sample in comparison.input_shapes)
    mism = sum(o.mismatches for o in comparison.outputs)
    return (f"<span class='wb-badge wb-badge-{text.lower()}' style='background:{color};color:white;"
            f"padding:2px 10px;border-radius:10px;font-weight:bold'>{text}</span> "
            f"<span class='wb-diff-config'>config <code>{escape(config.label())}</code></span> \u00b7 "
            f"{escape(comparison.tolerance)} (rtol {comparison.rtol:g}, atol {comparison.atol:g}) \u00b7 "
            f"max abs {comparison.max_abs:.3g} \u00b7 max rel {comparison.max_rel:.3g} \u00b7 "
            f"{mism} value(s) beyond tolerance \u00b7 inputs {escape(shapes)} \u00b7 "
            f"on {escape(', '.join(p.replace('ExecutionProvider', '') for p in comparison.providers))}")


@dataclass
class _Outcome:
    comparison: Comparison
    config: SessionConfig
    requested: float
    timings: dict[str, float]


def _one_sample(inputs: Any) -> tuple[Any, ...] | None:
    """``inputs`` as a tuple of tensors when it is one sample (not a list of samples), else ``None``."""
    if inputs is None:
        return None
    try:
        return as_input_tuple(inputs)
    except InvalidInputError:
        return None


class LiveDiff(Panel):
    """PyTorch vs ORT values (scatter with y = x), the |error| histogram (log scale), the worst
    error per output against the tolerance, and a pass/fail badge.

    Redraws when ``config``, ``inputs``, ``onnx_path`` or ``tolerance`` change. With ``spec`` (and
    ``example_inputs``) it shows one slider per dynamic input axis (batch, sequence length...) that
    remakes the inputs with ``resize_inputs``.
    """

    onnx_path = traitlets.Unicode("", help="The ONNX file compared ('' for none yet).")
    config = traitlets.Instance(SessionConfig, help="The ONNX Runtime session config.")
    inputs = traitlets.Any(None, help="One tuple of tensors, or a list of such tuples (samples).")
    tolerance = traitlets.Any("fp32", help="A preset name (fp32, fp16, int8) or a pair (rtol, atol).")
    comparison = traitlets.Instance(Comparison, allow_none=True, help="The last comparison shown.")
    redraws = traitlets.Int(0, help="How many comparisons have been drawn.")
    last_redraw_s = traitlets.Float(0.0, help="Seconds from the last request to its figures being sent.")
    timings = traitlets.Dict(help="Seconds of the last redraw: wait, session, compare, figures, send, total.")

    def __init__(self, model: nn.Module, onnx_path: str | Path = "", inputs: Any = None, *,
                 config: SessionConfig | None = None, tolerance: Any = "fp32", spec: ExportSpec | None = None,
                 example_inputs: Any = None, max_size: int = 256) -> None:
        self.model = model
        self._worker: LatestWorker[_Outcome] = LatestWorker("workbench-live-diff")
        self._session: tuple[tuple[str, float, SessionConfig], Any] | None = None
        self.spec = spec
        self.example_inputs = _one_sample(example_inputs if example_inputs is not None else inputs)
        self.sliders = self._make_sliders(max_size)
        self.tolerance_picker = widgets.Dropdown(options=list(TOLERANCES), description="tolerance",
                                                 value=tolerance if tolerance in TOLERANCES else None,
                                                 layout=widgets.Layout(width="200px"))
        self.badge = widgets.HTML()
        self.badge.add_class("wb-diff-badge")
        self.scatter = FigureSlot("scatter", width="50%")
        self.histogram = FigureSlot("histogram", width="50%")
        self.bars = FigureSlot("bars")
        plots = widgets.VBox([widgets.HBox([self.scatter, self.histogram]), self.bars])
        controls = widgets.HBox([*self.sliders.values(), self.tolerance_picker],
                                layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__(children=[widgets.HTML("<b>PyTorch vs ONNX Runtime</b>"), controls, self.badge,
                                   self.status, plots, ResizeNudge()])
        self.add_class("wb-live-diff")
        with self.hold_trait_notifications():
            self.config = config or SessionConfig()
            self.tolerance = tolerance
            self.inputs = inputs if inputs is not None else self._inputs_from_sliders()
            self.onnx_path = str(onnx_path) if onnx_path else ""
        for slider in self.sliders.values():
            slider.observe(self._slider_moved, names="value")
        self.tolerance_picker.observe(self._tolerance_picked, names="value")
        if not self.onnx_path:
            self._set_state("idle", "No ONNX model yet: export one to compare it with PyTorch.")

    def _make_sliders(self, max_size: int) -> dict[str, widgets.IntSlider]:
        if self.spec is None or self.example_inputs is None:
            return {}
        sizes = example_sizes(self.example_inputs, self.spec.input_names, self.spec.dynamic_axes)
        sliders = {}
        for symbol in axis_symbols(self.spec.dynamic_axes, self.spec.input_names):
            value = sizes.get(symbol, 1)
            slider = widgets.IntSlider(value=value, min=1, max=max(max_size if "seq" in symbol else 16, value),
                                       description=symbol, continuous_update=False,
                                       layout=widgets.Layout(width="300px"))
            slider.add_class(f"wb-slider-{symbol}")
            sliders[symbol] = slider
        return sliders

    def _inputs_from_sliders(self) -> Any:
        if self.example_inputs is None:
            return None
        if not self.sliders or self.spec is None:
            return self.example_inputs
        sizes = {symbol: int(s.value) for symbol, s in self.sliders.items()}
        return resize_inputs(self.example_inputs, self.spec.input_names, self.spec.dynamic_axes, sizes)

    def _slider_moved(self, change: dict[str, Any]) -> None:
        try:
            self.inputs = self._inputs_from_sliders()
        except Exception as exc:  # shown in the widget
            self._fail(exc, title="Could not make inputs of that size")

    def _tolerance_picked(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.tolerance = change["new"]

    @traitlets.observe("config", "inputs", "onnx_path", "tolerance")
    def _changed(self, change: dict[str, Any]) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Compare again and redraw (off the main thread); see ``wait()``."""
        if not self.onnx_path or self.inputs is None:
            return
        requested = time.perf_counter()
        path, config, inputs, tolerance = self.onnx_path, self.config, self.inputs, self.tolerance
        self._set_state("running", f"Comparing with <code>{escape(config.label())}</code>\u2026")
        self._worker.submit(lambda: self._compare(path, config, inputs, tolerance, requested),
                            self._draw, self._failed)

    def _compare(self, path: str, config: SessionConfig, inputs: Any, tolerance: Any, requested: float) -> _Outcome:
        start = time.perf_counter()
        session = self._session_for(path, config)
        opened = time.perf_counter()
        comparison = compare(self.model, session, inputs, tolerance)
        return _Outcome(comparison, config, requested, {"wait": start - requested, "session": opened - start,
                                                        "compare": time.perf_counter() - opened})

    def _session_for(self, path: str, config: SessionConfig) -> Any:
        """One ``open_session`` per (file version, config): moving a slider reuses it."""
        key = (path, Path(path).stat().st_mtime, config)
        if self._session is None or self._session[0] != key:
            self._session = None
            self._session = (key, open_session(path, config))
        return self._session[1]

    def _draw(self, outcome: _Outcome) -> None:
        comparison, config = outcome.comparison, outcome.config
        label = config.label()
        timings = dict(outcome.timings, figures=0.0, send=0.0)
        builders: list[tuple[FigureSlot, Callable[[Comparison], Any]]] = [
            (self.scatter, values_scatter), (self.histogram, error_histogram), (self.bars, error_bars)]
        for target, build in builders:
            start = time.perf_counter()
            figure = build(comparison)
            built = time.perf_counter()
            target.show(figure, title_suffix=label)
            timings["figures"] += built - start
            timings["send"] += time.perf_counter() - built
        self.badge.value = badge_html(comparison, config)
        self.comparison = comparison
        self.last_redraw_s = time.perf_counter() - outcome.requested
        self.timings = dict(timings, total=self.last_redraw_s)
        self.redraws += 1
        verdict = "pass" if comparison.ok else "FAIL"
        parts = ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if k != "wait")
        self._set_state("done", f"Compared with <code>{escape(label)}</code>: {verdict} "
                                f"(drawn {self.last_redraw_s:.2f} s after the change"
                                f"<span style='color:#6e7781'>: {parts} s</span>)")

    def _failed(self, exc: BaseException) -> None:
        self.comparison = None
        self.badge.value = ("<span class='wb-badge wb-badge-error' style='background:#6e7781;color:white;"
                            "padding:2px 10px;border-radius:10px;font-weight:bold'>NO RESULT</span>")
        self._fail(exc, title="The comparison failed")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the newest redraw is done (for scripts, tests and benchmarks)."""
        return self._worker.wait(timeout)

    def __repr__(self) -> str:
        return f"LiveDiff({self.onnx_path!r}, config={self.config.label()!r}, state={self.state!r})"
