"""``Tuner``: ``wb.tune`` as a panel: budget, tolerance and grid, Start / Cancel, a Pareto plot of
latency against error that fills in as candidates finish, the table of candidates, the verdict,
and "Use this config", which sets ``config`` and ``tuned_model`` (the dashboard's session toggles
and panels follow them)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core._format import esc
from workbench.core.case import ModelCase
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import TOLERANCES, Tolerance
from workbench.core.tune_results import CandidateResult, TuneResult
from workbench.errors import InvalidInputError
from workbench.viz._common import empty_figure
from workbench.viz.tune import PASSED, pareto_figure, tune_speedups_figure
from workbench.widgets._base import Panel, Worker, cancel_worker, shows_errors
from workbench.widgets._figures import FigureSlot, ResizeNudge
from workbench.widgets._traits import OnnxFile, checked_sizes, checked_tolerance, format_sizes, parse_sizes, read_grid_field
from workbench.widgets._tune_table import candidates_table_html, verdict_html
from workbench.widgets.sweep import default_seq_lens

#: Seconds between live redraws of the Pareto plot and the table while a tune runs.
LIVE_REDRAW_S = 0.5


def usable_candidates(result: TuneResult) -> list[CandidateResult]:
    """The candidates one may put to use: those that passed the accuracy gate and were timed (chosen,
    passed, or pruned by the search after passing it), the chosen one first, then the fastest. A
    candidate fixed to one shape (``candidate.shapes``, a static-shape file) is left out: the dashboard
    runs the config at every shape."""
    usable = [c for c in result.candidates if c.status in PASSED and c.timings and math.isfinite(c.latency_ms)
              and c.candidate.shapes is None]
    return sorted(usable, key=lambda c: (c is not result.chosen, c.latency_ms))


class Tuner(Panel):
    """Tunes ``onnx_model`` against ``model`` with ``wb.tune`` on a worker thread (Cancel stops it
    between candidates; what was measured is kept). ``result`` holds the ``TuneResult``;
    ``candidates`` the ``CandidateResult``s as they finish. "Use this config" sets ``config`` (a
    ``SessionConfig``) and ``tuned_model`` (the ONNX file it goes with) to the candidate picked in
    the list: the chosen one unless you pick another that passed the gate (e.g. an fp32 one).
    """

    onnx_model = OnnxFile("", help="The ONNX file tuned: the export ('' before one).")
    budget_s = traitlets.Float(60.0, help="Seconds the search may take (it stops at the budget).")
    tolerance = traitlets.Any("int8", help="The accuracy gate: a preset name (fp32, fp16, int8) or (rtol, atol).")
    batch_sizes = traitlets.Any([1, 8], help="The batch sizes of the grid: ints >= 1 (or text).")
    seq_lens = traitlets.Any([None], help="The sequence lengths: ints >= 1, or [None] for no sequence axis (or text).")
    candidates = traitlets.List(help="The CandidateResults so far (live while a tune runs).")
    result = traitlets.Instance(TuneResult, allow_none=True, help="The last tune's result.")
    config = traitlets.Instance(SessionConfig, allow_none=True, help="The config of the candidate put to use "
                                                                     "('Use this config'); None before.")
    tuned_model = OnnxFile("", help="The ONNX file of the candidate put to use ('' before).")

    def __init__(self, model: nn.Module, onnx_model: str | Path = "", *, example_inputs: Any = None,
                 spec: ExportSpec | None = None, input_factory: Callable[..., Any] | None = None,
                 batch_sizes: str | Sequence[int] = (1, 8), seq_lens: str | Sequence[int | None] | None = None,
                 budget_s: float = 60.0, tolerance: Tolerance = "int8", work_dir: str | Path | None = None) -> None:
        self.model = model
        self._inputs_from = {"example_inputs": example_inputs, "spec": spec, "input_factory": input_factory}
        self._work_dir = work_dir
        self._worker: Worker[TuneResult] = Worker("workbench-tune")
        self._lock = threading.Lock()
        self._found: dict[str, CandidateResult] = {}
        #: The gate of the last tune started (the dashboard's diff checks a tuned file at it).
        self.gate: Tolerance = tolerance
        self._usable: list[CandidateResult] = []
        self._last_draw = 0.0
        self._make_controls()
        self.pareto = FigureSlot("pareto", width="auto")
        self.speedups = FigureSlot("tune-speedups", width="auto")
        self.pareto.layout.flex, self.speedups.layout.flex = "1 1 560px", "1 1 420px"
        self.verdict = widgets.HTML()
        self.verdict.add_class("wb-tune-verdict-box")
        self.table = widgets.HTML()
        self.table.add_class("wb-tune-candidates")
        super().__init__(children=[
            widgets.HTML("<b>Tune: the fastest configuration that stays accurate</b>"), self._controls(), self.status,
            self.verdict, widgets.HBox([self.pickers, self.use_button], layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.pareto, self.speedups], layout=widgets.Layout(flex_flow="row wrap", width="100%")),
            self.table, ResizeNudge()])
        self.add_class("wb-tuner")
        self.budget_s, self.tolerance, self.batch_sizes = budget_s, tolerance, batch_sizes
        seq = seq_lens if seq_lens is not None else default_seq_lens(model, **self._inputs_from)[:1]
        self.seq_lens = seq
        self.onnx_model = onnx_model
        self.budget_field.value = self.budget_s
        self._write_field(self.batch_field, self.batch_sizes, "batch sizes")
        self._write_field(self.seq_field, self.seq_lens, "seq lengths", allow_none=True)
        self.budget_field.observe(lambda c: self.set_trait("budget_s", float(c["new"])), names="value")
        self.tolerance_picker.observe(self._use_picked_tolerance, names="value")
        for field in (self.batch_field, self.seq_field):
            field.observe(self._follow_the_fields, names="value")
        self._say_what_is_ready({})

    @classmethod
    def from_case(cls, case: ModelCase, onnx_model: str | Path = "", **options: Any) -> Tuner:
        """A tuner of ``case``'s model with inputs from its input maker; ``options`` as for the constructor."""
        return cls(case.model, onnx_model, example_inputs=case.example_inputs, spec=case.spec,
                   input_factory=case.input_factory, **options)

    def _make_controls(self) -> None:
        self.budget_field = widgets.BoundedFloatText(value=60.0, min=1.0, max=3600.0, step=10.0, description="budget (s)",
                                                     layout=widgets.Layout(width="180px"))
        self.budget_field.add_class("wb-tune-budget")
        self.tolerance_picker = widgets.Dropdown(options=list(TOLERANCES), value="int8", description="gate",
                                                 layout=widgets.Layout(width="160px"))
        self.batch_field = widgets.Text(description="batch sizes", continuous_update=False,
                                        layout=widgets.Layout(width="220px"))
        self.seq_field = widgets.Text(description="seq lengths", continuous_update=False,
                                      layout=widgets.Layout(width="220px"))
        self.start_button = widgets.Button(description="Start", button_style="primary", icon="play")
        self.start_button.add_class("wb-tune-start")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("wb-tune-cancel")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="200px"))
        self.progress_label = widgets.Label("")
        self.pickers = widgets.Dropdown(options=[], description="candidate", layout=widgets.Layout(width="420px"),
                                        style={"description_width": "70px"})
        self.pickers.add_class("wb-tune-pick")
        self.use_button = widgets.Button(description="Use this config", icon="check", disabled=True,
                                         tooltip="Set the session toggles (and the ONNX file) to this candidate")
        self.use_button.add_class("wb-tune-use")
        self.start_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.use_button.on_click(lambda _: self.use())

    def _controls(self) -> widgets.VBox:
        wrap = widgets.Layout(flex_flow="row wrap", align_items="center")
        return widgets.VBox([
            widgets.HBox([self.budget_field, self.tolerance_picker, self.batch_field, self.seq_field], layout=wrap),
            widgets.HBox([self.start_button, self.cancel_button, self.progress, self.progress_label], layout=wrap)])

    @traitlets.validate("budget_s")
    def _check_budget(self, proposal: dict[str, Any]) -> float:
        value = proposal["value"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 1 <= value <= 3600:
            raise traitlets.TraitError(f"budget_s must be seconds between 1 and 3600, received {value!r}.")
        return float(value)

    @traitlets.validate("tolerance")
    def _check_tolerance(self, proposal: dict[str, Any]) -> Tolerance:
        return checked_tolerance(proposal["value"])

    @traitlets.validate("batch_sizes")
    def _check_batch_sizes(self, proposal: dict[str, Any]) -> list[int | None]:
        return checked_sizes(proposal["value"], "batch sizes")

    @traitlets.validate("seq_lens")
    def _check_seq_lens(self, proposal: dict[str, Any]) -> list[int | None]:
        return checked_sizes(proposal["value"], "seq lengths", allow_none=True)

    @traitlets.observe("budget_s", "tolerance", "batch_sizes", "seq_lens")
    def _write_the_controls(self, change: dict[str, Any]) -> None:
        name, new = change["name"], change["new"]
        if name == "budget_s" and self.budget_field.value != new:
            self.budget_field.value = new
        elif name == "tolerance" and isinstance(new, str) and self.tolerance_picker.value != new:
            self.tolerance_picker.value = new
        elif name == "batch_sizes":
            self._write_field(self.batch_field, new, "batch sizes")
        elif name == "seq_lens":
            self._write_field(self.seq_field, new, "seq lengths", allow_none=True)

    @staticmethod
    def _write_field(field: widgets.Text, sizes: list[int | None], what: str, *, allow_none: bool = False) -> None:
        try:
            if field.value.strip() and parse_sizes(field.value, what, allow_none=allow_none) == list(sizes):
                return  # the field says it already, in the user's spelling
        except InvalidInputError:
            pass
        field.value = format_sizes(sizes)

    def _use_picked_tolerance(self, change: dict[str, Any]) -> None:
        if change["new"] != self.tolerance:
            self.tolerance = change["new"]

    def _follow_the_fields(self, change: dict[str, Any]) -> None:
        try:
            read_grid_field(self, change["owner"])
        except InvalidInputError as exc:
            self._fail(exc, title="Cannot read the grid")

    @traitlets.observe("onnx_model")
    def _say_what_is_ready(self, change: dict[str, Any]) -> None:
        if self._worker.running:
            return
        if not self.onnx_model:
            self._set_state("idle", "No ONNX model yet: export one to tune it.")
        elif self.result is not None:
            self._set_state("idle", f"The export changed since the last tune: press <b>Start</b> to tune "
                                    f"<code>{esc(Path(self.onnx_model).name)}</code> again.")
        else:
            self._set_state("idle", f"Ready to tune <code>{esc(Path(self.onnx_model).name)}</code>: set the budget, "
                                    "the accuracy gate and the grid, then press <b>Start</b>.")

    def run(self) -> None:
        """The Start button: ``wb.tune`` on a worker thread; see ``wait()`` and ``cancel()``."""
        try:
            self._start()
        except Exception as exc:  # a bad grid or no model: shown in the widget
            self._fail(exc, title="Cannot start the tune")

    def _start(self) -> None:
        if self._worker.running:
            return
        if not self.onnx_model:
            raise InvalidInputError("There is no ONNX model to tune yet: export one first (or set onnx_model).")
        read_grid_field(self, self.batch_field)
        read_grid_field(self, self.seq_field)
        options: dict[str, Any] = dict(batch_sizes=list(self.batch_sizes), seq_lens=list(self.seq_lens),
                                       tolerance=self.tolerance, budget_s=float(self.budget_s),
                                       work_dir=self._work_dir, **self._inputs_from)
        onnx_model, model, budget = self.onnx_model, self.model, float(self.budget_s)
        with self._lock:
            self._found = {}
        self.gate = self.tolerance
        self.candidates = []
        self.progress.max, self.progress.value, self.progress.bar_style = budget, 0.0, "info"
        self.progress_label.value = "starting\u2026"
        self.pickers.options, self.use_button.disabled, self.verdict.value, self.table.value = [], True, "", ""
        self._clear_the_plots()
        self._busy(True)
        self._last_draw = 0.0
        self._set_state("running", f"Tuning <code>{esc(Path(onnx_model).name)}</code> for up to {budget:.0f} s: each "
                                   "point on the plot is a candidate, measured against PyTorch as it finishes\u2026")

        def job(cancel: threading.Event) -> TuneResult:
            from workbench.core.tune import tune

            return tune(model, onnx_model, cancel=cancel, progress=self._show_progress, on_candidate=self._found_one,
                        **options)

        self._worker.start(job, self._show_result, self._show_failure, tick=self._tick, tick_s=0.5)

    def _clear_the_plots(self) -> None:
        """The last tune's plots go (where drawn): the new one's points come in as its candidates finish."""
        if self.pareto.figure is not None:
            self.pareto.show(pareto_figure([]))
        if self.speedups.figure is not None:
            self.speedups.show(empty_figure("Speed-up over PyTorch eager", "Measured at the end of the tune."))

    def cancel(self) -> None:
        """Stop the tune before its next candidate; what was measured is kept (``result.cancelled``)."""
        cancel_worker(self._worker, self.cancel_button, self.progress_label)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running tune and its display are done (for scripts and tests)."""
        return self._worker.wait(timeout)

    def close(self) -> None:
        """Cancel a running tune (it stops before its next candidate), then close the panel."""
        self._worker.cancel()
        self._worker.wait(30)
        super().close()

    def _busy(self, busy: bool) -> None:
        self.start_button.disabled = busy
        self.cancel_button.disabled = not busy

    def _tick(self, elapsed: float) -> None:
        self.progress.value = min(elapsed, self.progress.max)

    def _show_progress(self, stage: str, message: str) -> None:
        self.progress_label.value = f"{stage}: {message}"[:160]

    def _found_one(self, candidate: CandidateResult) -> None:
        """``on_candidate`` (on the tuning thread): keep its latest numbers (a candidate is reported again
        as it is gated, timed, pruned or chosen); redraw at most every ``LIVE_REDRAW_S``."""
        with self._lock:
            self._found[candidate.candidate.name] = candidate
            found = list(self._found.values())
        self.candidates = found
        if time.perf_counter() - self._last_draw >= LIVE_REDRAW_S:
            try:
                self._draw_live(found)
            except Exception:  # noqa: BLE001 - a live redraw must not stop the tune; the final draw shows errors
                pass
            self._last_draw = time.perf_counter()

    def _draw_live(self, found: list[CandidateResult]) -> None:
        self.pareto.show(pareto_figure(found))
        self.table.value = candidates_table_html(found, self._grid(), total_note="so far")

    def _grid(self) -> list[tuple[int, int | None]]:
        return [(b, s) for b in self.batch_sizes for s in self.seq_lens]  # type: ignore[misc]

    def _show_result(self, result: TuneResult) -> None:
        self._busy(False)
        self.candidates = list(result.candidates)
        self.pareto.show(pareto_figure(result))
        self.speedups.show(tune_speedups_figure(result))
        self.table.value = candidates_table_html(result.candidates, result.grid)
        self.verdict.value = verdict_html(result)
        usable = usable_candidates(result)
        self._usable = usable
        self.pickers.options = [(f"{c.candidate.name} ({c.status})", i) for i, c in enumerate(usable)]
        self.pickers.value = 0 if usable else None
        self.use_button.disabled = not usable
        self.progress.value, self.progress.bar_style = self.progress.max, "success" if result else "warning"
        self.progress_label.value = f"{len(result.candidates)} candidates in {result.elapsed_s:.0f} s"
        self.result = result
        state = "cancelled" if result.cancelled else "done"
        what = ("Cancelled: the candidates measured so far are below." if result.cancelled else
                "Done." if result.chosen is not None else "Done: no configuration beats PyTorch here.")
        use = " Pick a candidate and press <b>Use this config</b> to put it to use." if usable else ""
        self._set_state(state, what + use)

    def _show_failure(self, exc: BaseException) -> None:
        self._busy(False)
        self.progress.bar_style = "danger"
        self._fail(exc, title="The tune failed")

    @shows_errors
    def use(self, name: str | None = None) -> None:
        """"Use this config": set ``tuned_model`` and ``config`` to the candidate picked in the list
        (or the candidate called ``name``; it must have passed the gate)."""
        picked = self._picked(name)
        with self.hold_trait_notifications():
            self.tuned_model = str(picked.candidate.onnx_model)
            self.config = picked.candidate.config
        self._set_state("done", f"In use: <code>{esc(picked.candidate.name)}</code>, config "
                                f"<code>{esc(picked.candidate.config.label())}</code>, file "
                                f"<code>{esc(Path(picked.candidate.onnx_model).name)}</code>.")

    def _picked(self, name: str | None) -> CandidateResult:
        usable = self._usable
        if not usable:
            raise InvalidInputError("No candidate passed the accuracy gate yet: run the tune first (Start).")
        if name is None:
            return usable[self.pickers.value or 0]
        for c in usable:
            if c.candidate.name == name:
                self.pickers.value = usable.index(c)
                return c
        raise InvalidInputError(f"No candidate that passed the gate is called {name!r}; these did: "
                                f"{[c.candidate.name for c in usable]}.")

    def __repr__(self) -> str:
        return f"Tuner({self.onnx_model!r}, state={self.state!r})"
