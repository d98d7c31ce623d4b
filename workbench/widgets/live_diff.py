"""``LiveDiff``: PyTorch vs ONNX Runtime, redrawn whenever the session config or the inputs change.

Each redraw is one ``wb.compare`` on a session from ``wb.load_session`` (the core's shared,
memoized loader: moving a slider reuses the session) and the ``workbench.viz`` figures of the
``Comparison``, shown in plotly ``FigureWidget``s. Everything (making the inputs, the session,
the comparison, the figures) runs off the kernel's main thread; only the newest request is shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import ipywidgets as widgets
import traitlets
import torch
from torch import nn

from workbench.core._format import badge, esc
from workbench.core.case import ModelCase
from workbench.core.compare import Comparison, compare
from workbench.core.feeds import as_samples
from workbench.core.inputs import as_input_tuple, example_sizes
from workbench.core.session import SessionConfig, load_session
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import TOLERANCES, Tolerance
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.viz import error_bars, error_histogram, values_scatter
from workbench.widgets._base import LatestWorker, Panel, clipped_html, timings_html
from workbench.widgets._figures import FigureSlot, ResizeNudge
from workbench.doctor.quick_probe import explain_size_failure, exported_with, is_run_failure
from workbench.widgets._traits import OnnxFile, checked_size, checked_tolerance, refused

#: The largest batch the batch slider offers (the sequence slider goes to ``max_seq``).
MAX_BATCH = 16
#: The width under which the scatter and the histogram no longer share a row.
PAIR_MIN_WIDTH = "420px"


def verdict_html(comparison: Comparison, config: SessionConfig) -> str:
    """The comparison's own ``_repr_html_`` (its pass/fail badge and table), under a line saying the
    config, the input shapes and the providers it ran on."""
    verdict = "pass" if comparison.ok else "fail"
    shapes = "; ".join(", ".join(str(list(s)) for s in sample) for sample in comparison.input_shapes)
    providers = ", ".join(p.replace("ExecutionProvider", "") for p in comparison.providers)
    return (f"<div class='wb-verdict wb-verdict-{verdict}'>"
            f"<span class='wb-diff-config'>config <code>{esc(config.label())}</code></span> \u00b7 "
            f"inputs {esc(shapes)} \u00b7 on {esc(providers)}"
            f"{comparison._repr_html_()}</div>")  # its table scrolls sideways by itself in a narrow panel


@dataclass(frozen=True)
class _Request:
    """One redraw's arguments, read on the main thread, used on the worker."""

    model: nn.Module
    case: ModelCase | None
    onnx_model: str
    config: SessionConfig
    inputs: Any
    batch: int | None
    seq: int | None
    tolerance: Tolerance
    requested: float


@dataclass
class _Outcome:
    comparison: Comparison
    config: SessionConfig
    requested: float
    timings: dict[str, float]


def compare_request(request: _Request) -> _Outcome:
    """The worker's job: the inputs (the case's, at the sliders' sizes, unless given), the session
    (``load_session``) and the comparison, each timed."""
    start = time.perf_counter()
    inputs = request.inputs
    if inputs is None:
        assert request.case is not None  # refresh() sends no request without either
        inputs = request.case.make_inputs(request.batch, request.seq)
    made = time.perf_counter()
    session = load_session(request.onnx_model, request.config)
    opened = time.perf_counter()
    try:
        comparison = compare(request.model, session, inputs, tolerance=request.tolerance)
    except Exception as exc:
        if not is_run_failure(exc):
            raise
        raise _explained(exc, request, [i.name for i in session.get_inputs()], inputs) from exc
    return _Outcome(comparison, request.config, request.requested, {
        "wait": start - request.requested, "inputs": made - start, "session": opened - made,
        "compare": time.perf_counter() - opened})


def _explained(exc: BaseException, request: _Request, names: list[str], inputs: Any) -> WorkbenchError:
    """ONNX Runtime failed to run the file on ``inputs``: the error naming the shape and why."""
    sample = as_samples(inputs)[0]
    if isinstance(sample, Mapping):
        names, values = list(sample), list(sample.values())
    else:
        values = list(sample)
    example: dict[str, int] = {}
    sizes: dict[str, int] = {}
    if request.case is not None and all(isinstance(v, torch.Tensor) for v in values):
        case = request.case
        example = example_sizes(case.example_inputs, case.input_names, case.dynamic_axes)
        sizes = example_sizes(values, case.input_names, case.dynamic_axes)
    shapes = [tuple(getattr(v, "shape", ())) for v in values]
    return explain_size_failure(exc, names=names, shapes=shapes, example=example, sizes=sizes,
                                exporter=exported_with(request.onnx_model))


def _case(model: nn.Module, example_inputs: Any, inputs: Any, spec: ExportSpec | None,
          input_factory: Callable[..., Any] | None) -> ModelCase | None:
    """The case the sliders make inputs from: the example inputs, else ``inputs`` when they are one
    sample; ``None`` without either (bad example inputs raise, as ``ModelCase`` does)."""
    if example_inputs is None:
        try:
            example_inputs = as_input_tuple(inputs)
        except InvalidInputError:
            return None
    return ModelCase(name=type(model).__name__, model=model, example_inputs=example_inputs, spec=spec,
                     input_factory=input_factory)


class LiveDiff(Panel):
    """PyTorch vs ORT values (scatter with y = x), the |error| histogram (log scale), the worst
    error per output against the tolerance, and the comparison's pass/fail verdict.

    Redraws when ``config``, ``inputs``, ``onnx_model``, ``tolerance``, ``batch`` or ``seq`` change.
    With ``example_inputs`` (and a ``spec`` with dynamic axes, or an ``input_factory``) it shows a
    slider for the batch size and one for the sequence length; while ``inputs`` is ``None`` the
    inputs are ``ModelCase.make_inputs(batch, seq)``. Setting ``inputs`` compares on those instead,
    until a slider moves.
    """

    onnx_model = OnnxFile("", help="The ONNX file compared ('' for none yet).")
    config = traitlets.Instance(SessionConfig, help="The ONNX Runtime session config.")
    inputs = traitlets.Any(None, help="One tuple of tensors, or a list of such tuples (samples); None: the "
                                      "example inputs resized to batch and seq.")
    batch = traitlets.Int(None, allow_none=True, help="The batch size of the inputs made from the example.")
    seq = traitlets.Int(None, allow_none=True, help="The sequence length of the inputs made from the example.")
    tolerance = traitlets.Any("fp32", help="A preset name (fp32, fp16, int8) or a pair (rtol, atol).")
    comparison = traitlets.Instance(Comparison, allow_none=True, help="The last comparison shown.")
    redraws = traitlets.Int(0, help="How many comparisons have been drawn.")
    last_redraw_s = traitlets.Float(0.0, help="Seconds from the last request to its figures being sent.")
    timings = traitlets.Dict(help="Seconds of the last redraw: wait, inputs, session, compare, figures, send, total.")

    def __init__(self, model: nn.Module, onnx_model: str | Path = "", inputs: Any = None, *,
                 tolerance: Tolerance = "fp32", config: SessionConfig | None = None, spec: ExportSpec | None = None,
                 example_inputs: Any = None, input_factory: Callable[..., Any] | None = None,
                 max_seq: int = 256) -> None:
        self._ready = False
        self.model = model
        self.case = _case(model, example_inputs, inputs, spec, input_factory)
        self._worker: LatestWorker[_Outcome] = LatestWorker("workbench-live-diff")
        self.sliders = self._make_sliders(max_seq)
        self.tolerance_picker = widgets.Dropdown(options=list(TOLERANCES), description="tolerance",
                                                 layout=widgets.Layout(width="200px"))
        self.tolerance_picker.add_class("wb-tolerance")
        self.verdict = widgets.HTML()
        self.verdict.add_class("wb-diff-verdict")
        self.scatter = FigureSlot("scatter", width="auto")
        self.histogram = FigureSlot("histogram", width="auto")
        for slot in (self.scatter, self.histogram):  # side by side where both fit, else one under the other
            slot.layout.flex = f"1 1 {PAIR_MIN_WIDTH}"
        self.bars = FigureSlot("bars")
        pair = widgets.HBox([self.scatter, self.histogram], layout=widgets.Layout(flex_flow="row wrap"))
        self.plots = plots = widgets.VBox([pair, self.bars])
        controls = widgets.HBox([*self.sliders.values(), self.tolerance_picker],
                                layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__(children=[widgets.HTML("<b>PyTorch vs ONNX Runtime</b>"), controls, self.verdict,
                                   self.status, plots, ResizeNudge()])
        self.add_class("wb-live-diff")
        self.config = config or SessionConfig()
        self.tolerance = tolerance
        self.inputs = inputs
        self.onnx_model = onnx_model
        for name, slider in self.sliders.items():
            self.set_trait(name, slider.value)
            traitlets.link((slider, "value"), (self, name))
        self.tolerance_picker.observe(self._use_picked_tolerance, names="value")
        self._show_tolerance_in_picker({"new": self.tolerance})
        self._ready = True
        self.refresh()

    @classmethod
    def from_case(cls, case: ModelCase, onnx_model: str | Path = "", **options: Any) -> LiveDiff:
        """A diff of ``case``'s model on its example inputs (sliders from its spec), at its tolerance
        and config; ``options`` as for the constructor."""
        options = {"tolerance": case.tolerance, "config": case.config, **options}
        return cls(case.model, onnx_model, spec=case.spec, example_inputs=case.example_inputs,
                   input_factory=case.input_factory, **options)

    def _make_sliders(self, max_seq: int) -> dict[str, widgets.IntSlider]:
        """One slider for the example's batch size and one for its sequence length, where it has them."""
        if self.case is None:
            return {}
        sliders = {}
        for name, value, top in zip(("batch", "seq"), self.case.example_sizes(), (MAX_BATCH, max_seq)):
            if value is None:
                continue
            slider = widgets.IntSlider(value=value, min=1, max=max(top, value), description=name,
                                       continuous_update=False, layout=widgets.Layout(width="300px"))
            slider.add_class(f"wb-slider-{name}")
            sliders[name] = slider
        return sliders

    @traitlets.validate("tolerance")
    def _check_tolerance(self, proposal: dict[str, Any]) -> Tolerance:
        return checked_tolerance(proposal["value"])

    @traitlets.validate("batch", "seq")
    def _check_size(self, proposal: dict[str, Any]) -> int | None:
        name, value = proposal["trait"].name, checked_size(proposal["value"], proposal["trait"].name)
        slider = self.sliders.get(name)
        if slider is not None and value is not None and value > slider.max:
            slider.max = value  # a size past the slider's end widens it, rather than being clipped
        return value

    @traitlets.validate("inputs")
    def _check_inputs(self, proposal: dict[str, Any]) -> Any:
        if proposal["value"] is not None:
            try:
                as_samples(proposal["value"])
            except InvalidInputError as exc:
                raise refused(exc) from exc
        return proposal["value"]

    def _use_picked_tolerance(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.tolerance = change["new"]

    @traitlets.observe("tolerance")
    def _show_tolerance_in_picker(self, change: dict[str, Any]) -> None:
        self.tolerance_picker.value = change["new"] if change["new"] in TOLERANCES else None

    @traitlets.observe("batch", "seq")
    def _use_the_sliders_sizes(self, change: dict[str, Any]) -> None:
        """A slider moved: compare on the example resized to it (given ``inputs`` are dropped)."""
        if self.inputs is not None:
            self.inputs = None  # compares again
        else:
            self.refresh()

    @traitlets.observe("config", "inputs", "onnx_model", "tolerance")
    def _compare_again(self, change: dict[str, Any]) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Compare again and redraw (off the main thread); see ``wait()``."""
        if not self._ready:
            return
        if not self.onnx_model:
            self._set_state("idle", "No ONNX model yet: export one to compare it with PyTorch.")
            return
        if self.inputs is None and self.case is None:
            self._set_state("idle", "No inputs yet: set <code>inputs</code> (or pass example_inputs).")
            return
        request = _Request(self.model, self.case, self.onnx_model, self.config, self.inputs, self.batch, self.seq,
                           self.tolerance, time.perf_counter())
        self._set_state("running", f"Comparing with <code>{esc(request.config.label())}</code>\u2026")
        self._worker.submit(lambda: compare_request(request), self._draw, self._show_failure)

    def _draw(self, outcome: _Outcome) -> None:
        """Build and send the three figures (on the worker thread), then the verdict and status."""
        comparison, label = outcome.comparison, outcome.config.label()
        timings = dict(outcome.timings, figures=0.0, send=0.0)
        builders: list[tuple[FigureSlot, Callable[[Comparison], Any]]] = [
            (self.scatter, values_scatter), (self.histogram, error_histogram), (self.bars, error_bars)]
        self.plots.layout.display = None  # hidden while the last comparison failed
        for target, build in builders:
            start = time.perf_counter()
            figure = build(comparison)
            built = time.perf_counter()
            target.show(figure, title_suffix=label)
            timings["figures"] += built - start
            timings["send"] += time.perf_counter() - built
        self.verdict.value = verdict_html(comparison, outcome.config)
        self.comparison = comparison
        self.last_redraw_s = time.perf_counter() - outcome.requested
        self.timings = dict(timings, total=self.last_redraw_s)
        self.redraws += 1
        shapes = "; ".join(", ".join(str(list(s)) for s in sample) for sample in comparison.input_shapes)
        verdict = "pass" if comparison.ok else "FAIL"
        steps = {k: v for k, v in timings.items() if k != "wait"}
        self._set_state("done", f"Compared with <code>{esc(label)}</code> on inputs {esc(shapes)} at "
                                f"{esc(comparison.tolerance)}: {verdict}."
                                + timings_html(dict(steps, total=self.last_redraw_s),
                                               summary=f"timings (drawn {self.last_redraw_s:.2f} s after the change)"))

    def _show_failure(self, exc: BaseException) -> None:
        self.comparison = None
        self.verdict.value = f"<div class='wb-verdict wb-verdict-none'>{badge(None, 'NO RESULT')}</div>"
        self.plots.layout.display = "none"  # the figures of an earlier comparison would pass for this one's
        cause = exc.__cause__
        if cause is None or not is_run_failure(cause):
            self._fail(exc, title="The comparison failed")
            return
        raw = " ".join(str(cause).split())  # ONNX Runtime's own words: folded, for a bug report
        self._set_state("failed", "<b>The comparison failed</b>"
                                  f"<p style='margin: 4px 0'>{clipped_html(str(exc), 600)}</p><details><summary>"
                                  f"ONNX Runtime's message</summary><pre style='white-space: pre-wrap; font-size: 11px'>"
                                  f"{esc(raw)}</pre></details>")
        self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the newest redraw is done (for scripts, tests and benchmarks)."""
        return self._worker.wait(timeout)

    def __repr__(self) -> str:
        return f"LiveDiff({self.onnx_model!r}, config={self.config.label()!r}, state={self.state!r})"
