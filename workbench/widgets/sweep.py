"""``LatencySweep``: a grid editor for ``wb.sweep``, run off the main thread with Cancel, a progress
bar, plots that fill in as cells finish, the results table and CSV."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core._format import esc
from workbench.core.case import ModelCase
from workbench.core.inputs import as_input_tuple
from workbench.core.session import OPT_LEVELS, SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.sweep import CELL_BUDGET_S, SWEEP_RUNS, SweepResult, sweep
from workbench.core.sweep_results import UNCLEAR, ci_text
from workbench.errors import InvalidInputError
from workbench.viz import latency_figure, speedup_figure
from workbench.widgets._base import Panel, Worker, cancel_worker, clipped_html
from workbench.widgets._figures import FigureSlot, ResizeNudge
from workbench.widgets._traits import OnnxFile, checked_sizes, format_sizes, parse_sizes, read_grid_field

#: Seconds between live redraws of the plots while a sweep runs.
LIVE_REDRAW_S = 0.75
#: The panel's one line on how a cell is measured and how far its verdict can be trusted.
METHOD_NOTE = ("Each cell runs eager and every ORT config in turns, 5 calls at a time (the first dropped), until "
               "each speed-up's 95% interval is within \u00b15% or the cell's seconds are spent; the defaults "
               "give a stable verdict on the smoke models. Hatched bars: no clear difference.")


def default_seq_lens(model: nn.Module, example_inputs: Any, spec: ExportSpec | None,
                     input_factory: Callable[..., Any] | None) -> list[int | None]:
    """The example's sequence length and twice it, where the example has one; ``[16, 64]`` for an
    input factory without a spec; else ``[None]`` (no sequence axis)."""
    if example_inputs is not None:
        case = ModelCase(name=type(model).__name__, model=model, example_inputs=as_input_tuple(example_inputs),
                         spec=spec, input_factory=input_factory)
        seq = case.example_sizes()[1]
        if seq is not None:
            return [seq, 2 * seq]
    return [16, 64] if input_factory is not None and spec is None else [None]


def _checkbox(description: str, value: bool, **layout: str) -> widgets.Checkbox:
    return widgets.Checkbox(value=value, description=description, indent=False,
                            layout=widgets.Layout(width="auto", **layout))


class LatencySweep(Panel):
    """Batch sizes x sequence lengths x configs (PyTorch eager, ORT optimization levels, the
    session toggles' config), timed by ``wb.sweep``; ``result`` holds the ``SweepResult``.

    ``batch_sizes`` and ``seq_lens`` follow the two text fields (and move them when set).
    """

    onnx_model = OnnxFile("", help="The ONNX file timed ('' for none yet).")
    batch_sizes = traitlets.Any([1, 2, 4, 8], help="The batch sizes of the grid: a list of ints >= 1 (or text).")
    seq_lens = traitlets.Any([None], help="The sequence lengths of the grid: ints >= 1, or [None] for no "
                                          "sequence axis (or text).")
    extra_config = traitlets.Instance(SessionConfig, allow_none=True,
                                      help="One more config to offer (e.g. the session toggles' value).")
    result = traitlets.Instance(SweepResult, allow_none=True, help="The last sweep's result (partial if cancelled).")

    def __init__(self, model: nn.Module, onnx_model: str | Path = "", *, example_inputs: Any = None,
                 spec: ExportSpec | None = None, input_factory: Callable[..., Any] | None = None,
                 batch_sizes: str | Sequence[int] = (1, 2, 4, 8), seq_lens: str | Sequence[int | None] | None = None,
                 runs: int = SWEEP_RUNS, warmup: int = 2, cell_budget_s: float = CELL_BUDGET_S,
                 extra_config: SessionConfig | None = None) -> None:
        self.model = model
        self._inputs_from = {"example_inputs": example_inputs, "spec": spec, "input_factory": input_factory}
        self._worker: Worker[SweepResult] = Worker("workbench-sweep")
        self._last_draw = 0.0
        self.batch_field = widgets.Text(description="batch sizes", continuous_update=False,
                                        layout=widgets.Layout(width="260px"))
        self.seq_field = widgets.Text(description="seq lengths", continuous_update=False,
                                      layout=widgets.Layout(width="260px"))
        self.runs = widgets.BoundedIntText(value=runs, min=1, max=10_000, description="min runs/cell",
                                           layout=widgets.Layout(width="190px"),
                                           style={"description_width": "initial"})
        self.cell_budget = widgets.BoundedFloatText(value=cell_budget_s, min=0.05, max=600, step=0.5,
                                                    description="s/cell", layout=widgets.Layout(width="150px"))
        self.warmup = widgets.BoundedIntText(value=warmup, min=0, max=1000, description="warmup",
                                             layout=widgets.Layout(width="160px"))
        self.eager_box = _checkbox("PyTorch eager", True)
        self.level_boxes = {level: _checkbox(f"ORT {level}", level == "all") for level in OPT_LEVELS}
        self.extra_box = _checkbox("session toggles", True, display="none")
        self._make_buttons()
        self.latency = FigureSlot("latency", width="auto")
        self.speedup = FigureSlot("speedup", width="auto")
        # Side by side where both fit (a 1400 px page), one under the other where not (1000 px).
        self.latency.layout.flex, self.speedup.layout.flex = "1 1 600px", "1 1 400px"
        self.table = widgets.HTML()
        self.table.add_class("wb-sweep-table")
        self.csv_out = widgets.Text(value="sweep.csv", layout=widgets.Layout(width="240px"))
        super().__init__(children=[widgets.HTML("<b>Latency sweep</b>"), self._grid(), self.status,
                                   widgets.HBox([self.latency, self.speedup], layout=widgets.Layout(
                                       flex_flow="row wrap", width="100%")), self.table,
                                   widgets.HBox([self.csv_out, self.csv_button]), ResizeNudge()])
        self.add_class("wb-latency-sweep")
        self.batch_sizes = batch_sizes
        self.seq_lens = seq_lens if seq_lens is not None else default_seq_lens(model, **self._inputs_from)
        self.extra_config = extra_config
        self.onnx_model = onnx_model
        self._write_field(self.batch_field, self.batch_sizes, "batch sizes")
        self._write_field(self.seq_field, self.seq_lens, "seq lengths", allow_none=True)
        self._say_what_is_ready({})
        self.batch_field.observe(self._follow_the_fields, names="value")
        self.seq_field.observe(self._follow_the_fields, names="value")

    @classmethod
    def from_case(cls, case: ModelCase, onnx_model: str | Path = "", **options: Any) -> LatencySweep:
        """A sweep of ``case``'s model with inputs from its input maker; ``options`` as for the constructor."""
        return cls(case.model, onnx_model, example_inputs=case.example_inputs, spec=case.spec,
                   input_factory=case.input_factory, **options)

    def _make_buttons(self) -> None:
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.run_button.add_class("wb-sweep-run")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("wb-sweep-cancel")
        self.csv_button = widgets.Button(description="Save CSV", icon="download")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="240px"))
        self.progress_label = widgets.Label("")
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.csv_button.on_click(lambda _: self._save_csv())

    def _grid(self) -> widgets.VBox:
        wrap = widgets.Layout(flex_flow="row wrap")
        return widgets.VBox([
            widgets.HBox([self.batch_field, self.seq_field, self.runs, self.cell_budget, self.warmup], layout=wrap),
            widgets.HTML(f"<small class='wb-sweep-method' style='color:#57606a'>{esc(METHOD_NOTE)}</small>"),
            widgets.HBox([widgets.Label("configs", layout=widgets.Layout(width="60px")), self.eager_box,
                          *self.level_boxes.values(), self.extra_box], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.run_button, self.cancel_button, self.progress, self.progress_label],
                         layout=widgets.Layout(align_items="center", flex_flow="row wrap")),
        ])

    @traitlets.validate("batch_sizes")
    def _check_batch_sizes(self, proposal: dict[str, Any]) -> list[int | None]:
        return checked_sizes(proposal["value"], "batch sizes")

    @traitlets.validate("seq_lens")
    def _check_seq_lens(self, proposal: dict[str, Any]) -> list[int | None]:
        return checked_sizes(proposal["value"], "seq lengths", allow_none=True)

    @traitlets.observe("batch_sizes", "seq_lens")
    def _write_grid_fields(self, change: dict[str, Any]) -> None:
        """A grid trait changed: only its own field shows it, and only if the field does not say so
        already. Rewriting both fields on any change overwrote an edit of the other field still on
        its way from the browser (the sweep then ran the old grid)."""
        if change["name"] == "batch_sizes":
            self._write_field(self.batch_field, change["new"], "batch sizes")
        else:
            self._write_field(self.seq_field, change["new"], "seq lengths", allow_none=True)

    @staticmethod
    def _write_field(field: widgets.Text, sizes: list[int | None], what: str, *, allow_none: bool = False) -> None:
        try:
            if field.value.strip() and parse_sizes(field.value, what, allow_none=allow_none) == list(sizes):
                return  # the field says it already (in the user's own spelling, e.g. "1,4")
        except InvalidInputError:
            pass
        field.value = format_sizes(sizes)

    def _follow_the_fields(self, change: dict[str, Any]) -> None:
        """A field was edited (Enter or leaving it; ``continuous_update=False``, so not on every
        keystroke): its trait follows, or the status says what is wrong. Only that field is read."""
        try:
            read_grid_field(self, change["owner"])
        except InvalidInputError as exc:
            self._fail(exc, title="Cannot read the grid")
        else:
            if self.state == "failed" and not self._worker.running:
                self._say_what_is_ready({})

    def _read_grid_fields(self) -> None:
        """Set ``batch_sizes`` and ``seq_lens`` from the text fields (``InvalidInputError`` if unreadable)."""
        read_grid_field(self, self.batch_field)
        read_grid_field(self, self.seq_field)

    @traitlets.observe("extra_config")
    def _offer_the_toggles_config(self, change: dict[str, Any]) -> None:
        config = change["new"]
        self.extra_box.layout.display = "none" if config is None else ""
        if config is not None:
            self.extra_box.description = f"session toggles ({config.label()})"

    @traitlets.observe("onnx_model")
    def _say_what_is_ready(self, change: dict[str, Any]) -> None:
        if self._worker.running:
            return
        if self.onnx_model:
            self._set_state("idle", f"Ready to time <code>{esc(Path(self.onnx_model).name)}</code>: pick the grid, "
                                    "then press <b>Run</b>.")
        else:
            self._set_state("idle", "No ONNX model yet: export one to time it.")

    def selected_configs(self) -> list[SessionConfig]:
        """The ORT configs ticked, without repeats (the toggles' config may equal a level's)."""
        configs = [SessionConfig(opt_level=level) for level, box in self.level_boxes.items() if box.value]
        if self.extra_config is not None and self.extra_box.value:
            configs.append(self.extra_config)
        unique: list[SessionConfig] = []
        for config in configs:  # SessionConfig is not hashable (provider options are a dict)
            if config not in unique:
                unique.append(config)
        return unique

    def run(self) -> None:
        """The Run button: ``wb.sweep`` on a worker thread; see ``wait()`` and ``cancel()``."""
        try:
            self._start()
        except Exception as exc:  # a bad grid is shown in the widget
            self._fail(exc, title="Cannot start the sweep")

    def _start(self) -> None:
        if self._worker.running:
            return
        if not self.onnx_model:
            raise InvalidInputError("There is no ONNX model to time yet: export one first (or set onnx_model).")
        self._read_grid_fields()
        configs, include_eager = self.selected_configs(), bool(self.eager_box.value)
        if not configs and not include_eager:
            raise InvalidInputError("No config is ticked: tick PyTorch eager or an ORT level.")
        options: dict[str, Any] = dict(
            batch_sizes=list(self.batch_sizes), seq_lens=list(self.seq_lens), configs=configs,
            include_eager=include_eager, warmup=int(self.warmup.value), runs=int(self.runs.value),
            cell_budget_s=float(self.cell_budget.value), **self._inputs_from)
        onnx_model, model = self.onnx_model, self.model
        total = len(self.batch_sizes) * len(self.seq_lens) * (len(configs) + include_eager)
        self.progress.max, self.progress.value, self.progress.bar_style = total, 0, "info"
        self.progress_label.value = f"0/{total}"
        self._busy(True)
        self._last_draw = 0.0
        self._set_state("running", f"Timing {total} cells of <code>{esc(Path(onnx_model).name)}</code>\u2026")

        def job(cancel: threading.Event) -> SweepResult:
            return sweep(model, onnx_model, cancel=cancel, on_row=self._show_partial, **options)

        self._worker.start(job, self._show_result, self._show_failure)

    def cancel(self) -> None:
        """Stop the sweep before its next block of calls; the complete cells so far are kept
        (``result.cancelled``)."""
        cancel_worker(self._worker, self.cancel_button, self.progress_label)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running sweep and its display are done (for scripts and tests)."""
        return self._worker.wait(timeout)

    def to_pandas(self) -> Any:
        """The last result as a DataFrame (one row per cell)."""
        return self._need_result().to_pandas()

    def to_csv(self, out: str | Path) -> Path:
        """Write the last result as CSV to ``out``; returns its path."""
        return self._need_result().to_csv(out)

    def _need_result(self) -> SweepResult:
        if self.result is None:
            raise InvalidInputError("No sweep has run yet: press Run (or call .run() and .wait()) first.")
        return self.result

    def _save_csv(self) -> None:
        try:
            target = self.to_csv(self.csv_out.value.strip() or "sweep.csv")
        except Exception as exc:  # shown in the widget
            self._fail(exc, title="Could not save the CSV")
        else:
            self._set_state(self.state if self.state != "failed" else "done",
                            f"Saved {len(self.result.rows) if self.result else 0} rows to <code>{esc(target)}</code>")

    def _busy(self, busy: bool) -> None:
        self.run_button.disabled = busy
        self.cancel_button.disabled = not busy

    def _show_progress(self, result: SweepResult) -> None:
        where = ""
        if result.rows:
            last = result.rows[-1]
            where = f" {last.config} batch={last.batch}" + (f" seq={last.seq}" if last.seq is not None else "")
        self.progress.max = result.total
        self.progress.value = len(result.rows)
        self.progress_label.value = f"{len(result.rows)}/{result.total}{where}"

    def _show_partial(self, result: SweepResult) -> None:
        """After each cell (on the worker): the progress, and the plots at most every ``LIVE_REDRAW_S``."""
        self._show_progress(result)
        if time.perf_counter() - self._last_draw >= LIVE_REDRAW_S:
            try:
                self._draw(result)
            except Exception:  # noqa: BLE001 - a live redraw must not stop the timing; the final draw shows errors
                pass
            self._last_draw = time.perf_counter()

    def _draw(self, result: SweepResult) -> None:
        self.latency.show(latency_figure(result))
        self.speedup.show(speedup_figure(result))
        self.table.value = sweep_table_html(result)

    def _show_result(self, result: SweepResult) -> None:
        self._busy(False)
        self._show_progress(result)
        self._draw(result)
        self.result = result
        failed = f", {len(result.errors)} failed (the table says why)" if result.errors else ""
        if result.cancelled:
            self.progress.bar_style = "warning"
            self._set_state("cancelled", f"Cancelled after {len(result.rows)} of {result.total} cells{failed}.")
        else:
            self.progress.bar_style = "success" if not result.errors else "danger"
            unclear = f", {len(result.unclear)} with no clear difference from eager" if result.unclear else ""
            self._set_state("done", f"Done: {len(result.rows)} cells timed{unclear}{failed}. The numbers are in the "
                                    "table below; <b>Save CSV</b> writes them to a file.")

    def _show_failure(self, exc: BaseException) -> None:
        self._busy(False)
        self.progress.bar_style = "danger"
        self._fail(exc, title="The sweep failed")

    def __repr__(self) -> str:
        return f"LatencySweep({self.onnx_model!r}, state={self.state!r})"


_TABLE_HEAD = ("config", "batch", "seq", "p50 (ms)", "p90 (ms)", "p99 (ms)", "items/s", "speedup", "95% CI", "note")
_UNCLEAR = "The 95% interval of this speed-up holds 1: this run cannot tell the two apart."
_NOISY = "The middle half of the runs spans more than 10% of the median: rerun with more runs, or close other work."


def sweep_table_html(result: SweepResult) -> str:
    """The rows as an HTML table, every time in milliseconds (like the plots); a failed cell's cause
    cut at a word with the full text behind a toggle."""
    cells = []
    for row in result.rows:
        seq = "-" if row.seq is None else str(row.seq)
        head = f"<td>{esc(row.config)}</td><td>{row.batch}</td><td>{seq}</td>"
        if not row.ok:
            cells.append(f"<tr class='wb-sweep-failed'>{head}<td colspan='7' style='color:#cf222e; text-align:left'>"
                         f"failed: {clipped_html(row.error or 'no message', 160)}</td></tr>")
            continue
        times = "".join(f"<td>{v * 1e3:.3f}</td>" for v in (row.p50, row.p90, row.p99))
        speedup = f"{row.speedup:.2f}x" if row.speedup is not None else "-"
        notes = [f"<span title='{esc(_UNCLEAR)}' style='color:#6e7781'>{UNCLEAR}</span>"] if row.verdict == UNCLEAR else []
        notes += [f"<span title='{esc(_NOISY)}' style='color:#9a6700'>noisy</span>"] if row.noisy else []
        rate = f"{row.throughput:,.0f}" if row.throughput >= 100 else f"{row.throughput:.3g}"
        cells.append(f"<tr>{head}{times}<td>{rate}</td><td>{speedup}</td><td>{ci_text(row)}</td>"
                     f"<td>{', '.join(notes)}</td></tr>")
    status = f"{len(result.rows)} of {result.total} cells" + (", cancelled" if result.cancelled else "") + (
        f", {len(result.errors)} failed" if result.errors else "")
    header = "".join(f"<th>{h}</th>" for h in _TABLE_HEAD)
    return (f"<div class='wb-sweep-summary' style='margin: 4px 0;'>{status}</div>"
            f"<table class='wb-sweep-rows' style='font-size: 12px;'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(cells)}</tbody></table>")
