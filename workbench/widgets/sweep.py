"""``LatencySweep``: a grid editor for ``wb.sweep``, run off the main thread with Cancel, a progress
bar, plots that fill in as cells finish, the results table and CSV."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core.inputs import as_input_tuple, axis_symbols, example_sizes
from workbench.core.session import OPT_LEVELS, SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.sweep import SweepResult, sweep
from workbench.errors import InvalidInputError
from workbench.viz import latency_figure, speedup_figure
from workbench.widgets._base import FigureSlot, Panel, ResizeNudge, Worker, escape

#: Seconds between live redraws of the plots while a sweep runs.
LIVE_REDRAW_S = 0.75


def parse_sizes(text: str, what: str, *, allow_none: bool = False) -> list[int | None]:
    """``"1, 2, 4"`` -> ``[1, 2, 4]``; ``"none"`` -> ``[None]`` where allowed."""
    items = [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]
    if allow_none and [t.lower() for t in items] in ([], ["none"], ["-"]):
        return [None]
    try:
        values = [int(t) for t in items]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise InvalidInputError(f"{what} must be a comma-separated list of ints >= 1, such as '1, 2, 4', "
                                f"received {text!r}.")
    return list(dict.fromkeys(values))


def _seq_default(spec: ExportSpec | None, example_inputs: Any, has_factory: bool) -> str:
    if spec is not None and example_inputs is not None:
        symbols = axis_symbols(spec.dynamic_axes, spec.input_names)
        if len(symbols) >= 2:
            seq = example_sizes(as_input_tuple(example_inputs), spec.input_names, spec.dynamic_axes).get(symbols[1], 16)
            return f"{seq}, {2 * seq}"
        return "none"
    return "16, 64" if has_factory else "none"


class LatencySweep(Panel):
    """Batch sizes x sequence lengths x configs (PyTorch eager, ORT optimization levels, the
    session toggles' config), timed by ``wb.sweep``; ``result`` holds the ``SweepResult``."""

    onnx_path = traitlets.Unicode("", help="The ONNX file timed ('' for none yet).")
    extra_config = traitlets.Instance(SessionConfig, allow_none=True,
                                      help="One more config to offer (e.g. the session toggles' value).")
    result = traitlets.Instance(SweepResult, allow_none=True, help="The last sweep's result (partial if cancelled).")

    def __init__(self, model: nn.Module, onnx_path: str | Path = "", *, spec: ExportSpec | None = None,
                 example_inputs: Any = None, input_factory: Callable[..., Any] | None = None,
                 batch_sizes: str = "1, 2, 4, 8", seq_lens: str | None = None, runs: int = 10, warmup: int = 2,
                 extra_config: SessionConfig | None = None) -> None:
        self.model = model
        self.spec = spec
        self.example_inputs = example_inputs
        self.input_factory = input_factory
        self._worker: Worker[SweepResult] = Worker("workbench-sweep")
        self._last_draw = 0.0
        self.batch_sizes = widgets.Text(value=batch_sizes, description="batch sizes", layout=widgets.Layout(width="260px"))
        self.seq_lens = widgets.Text(value=seq_lens or _seq_default(spec, example_inputs, input_factory is not None),
                                     description="seq lengths", layout=widgets.Layout(width="260px"))
        self.runs = widgets.BoundedIntText(value=runs, min=1, max=10_000, description="runs/cell",
                                           layout=widgets.Layout(width="160px"))
        self.warmup = widgets.BoundedIntText(value=warmup, min=0, max=1000, description="warmup",
                                             layout=widgets.Layout(width="160px"))
        self.eager_box = widgets.Checkbox(value=True, description="PyTorch eager", indent=False,
                                          layout=widgets.Layout(width="auto"))
        self.level_boxes = {level: widgets.Checkbox(value=level == "all", description=f"ORT {level}", indent=False,
                                                    layout=widgets.Layout(width="auto")) for level in OPT_LEVELS}
        self.extra_box = widgets.Checkbox(value=True, description="session toggles", indent=False,
                                          layout=widgets.Layout(width="auto", display="none"))
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.run_button.add_class("wb-sweep-run")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("wb-sweep-cancel")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="320px"))
        self.progress_label = widgets.Label("")
        self.latency = FigureSlot("latency", width="50%")
        self.speedup = FigureSlot("speedup", width="50%")
        self.table = widgets.HTML()
        self.table.add_class("wb-sweep-table")
        self.csv_path = widgets.Text(value="sweep.csv", layout=widgets.Layout(width="240px"))
        self.csv_button = widgets.Button(description="Save CSV", icon="download")
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.csv_button.on_click(lambda _: self._save_csv())
        grid = widgets.VBox([
            widgets.HBox([self.batch_sizes, self.seq_lens, self.runs, self.warmup], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([widgets.Label("configs", layout=widgets.Layout(width="60px")), self.eager_box,
                          *self.level_boxes.values(), self.extra_box], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.run_button, self.cancel_button, self.progress, self.progress_label],
                         layout=widgets.Layout(align_items="center")),
        ])
        plots = widgets.HBox([self.latency, self.speedup])
        csv = widgets.HBox([self.csv_path, self.csv_button])
        super().__init__(children=[widgets.HTML("<b>Latency sweep</b>"), grid, self.status, plots, self.table, csv,
                                   ResizeNudge()])
        self.add_class("wb-latency-sweep")
        self.extra_config = extra_config
        self.onnx_path = str(onnx_path) if onnx_path else ""
        self._idle_message()

    @traitlets.observe("extra_config")
    def _offer_extra(self, change: dict[str, Any]) -> None:
        config = change["new"]
        self.extra_box.layout.display = "none" if config is None else ""
        if config is not None:
            self.extra_box.description = f"session toggles ({config.label()})"

    @traitlets.observe("onnx_path")
    def _path_changed(self, change: dict[str, Any]) -> None:
        if not self._worker.running:
            self._idle_message()

    def _idle_message(self) -> None:
        if self.onnx_path:
            self._set_state("idle", f"Ready to time <code>{escape(Path(self.onnx_path).name)}</code>: pick the grid, "
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
        if not self.onnx_path:
            raise InvalidInputError("There is no ONNX model to time yet: export one first (or set onnx_path).")
        batches = parse_sizes(self.batch_sizes.value, "batch sizes")
        seqs = parse_sizes(self.seq_lens.value, "seq lengths", allow_none=True)
        configs = self.selected_configs()
        include_eager = bool(self.eager_box.value)
        if not configs and not include_eager:
            raise InvalidInputError("No config is ticked: tick PyTorch eager or an ORT level.")
        kwargs: dict[str, Any] = dict(
            include_eager=include_eager, warmup=int(self.warmup.value), runs=int(self.runs.value),
            input_factory=self.input_factory, spec=None if self.input_factory else self.spec,
            example_inputs=None if self.input_factory else self.example_inputs)
        path, model = self.onnx_path, self.model
        total = len(batches) * len(seqs) * (len(configs) + include_eager)
        self.progress.max, self.progress.value, self.progress.bar_style = total, 0, "info"
        self.progress_label.value = f"0/{total}"
        self._busy(True)
        self._last_draw = 0.0
        self._set_state("running", f"Timing {total} cells of <code>{escape(Path(path).name)}</code>\u2026")

        def job(cancel: threading.Event) -> SweepResult:
            return sweep(model, path, batches, seqs, configs, cancel=cancel, progress=self._progress,
                         on_row=self._partial, **kwargs)

        self._worker.start(job, self._done, self._failed)

    def cancel(self) -> None:
        """Stop the sweep before its next cell; the rows so far are kept (``result.cancelled``)."""
        if self._worker.running:
            self._worker.cancel()
            self.cancel_button.disabled = True
            self.progress_label.value += " \u2014 cancelling\u2026"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running sweep and its display are done (for scripts and tests)."""
        return self._worker.wait(timeout)

    def to_pandas(self) -> Any:
        """The last result as a DataFrame (one row per cell)."""
        return self._need_result().to_pandas()

    def to_csv(self, path: str | Path) -> Path:
        """Write the last result as CSV; returns the path."""
        return self._need_result().to_csv(path)

    def _need_result(self) -> SweepResult:
        if self.result is None:
            raise InvalidInputError("No sweep has run yet: press Run (or call .run() and .wait()) first.")
        return self.result

    def _save_csv(self) -> None:
        try:
            target = self.to_csv(self.csv_path.value.strip() or "sweep.csv")
        except Exception as exc:  # shown in the widget
            self._fail(exc, title="Could not save the CSV")
        else:
            self._set_state(self.state if self.state != "failed" else "done",
                            f"Saved {len(self.result.rows) if self.result else 0} rows to <code>{escape(target)}</code>")

    def _busy(self, busy: bool) -> None:
        self.run_button.disabled = busy
        self.cancel_button.disabled = not busy

    def _progress(self, done: int, total: int, label: str) -> None:
        self.progress.max = total
        self.progress.value = done
        self.progress_label.value = f"{done}/{total} {label}"

    def _partial(self, result: SweepResult) -> None:
        now = time.perf_counter()
        if now - self._last_draw >= LIVE_REDRAW_S:
            self._draw(result)
            self._last_draw = time.perf_counter()

    def _draw(self, result: SweepResult) -> None:
        self.latency.show(latency_figure(result))
        self.speedup.show(speedup_figure(result))
        self.table.value = result._repr_html_()

    def _done(self, result: SweepResult) -> None:
        self._busy(False)
        self._draw(result)
        self.result = result
        failed = f", {len(result.errors)} failed" if result.errors else ""
        if result.cancelled:
            self.progress.bar_style = "warning"
            self._set_state("cancelled", f"Cancelled after {len(result.rows)} of {result.total} cells{failed}.")
        else:
            self.progress.bar_style = "success" if not result.errors else "danger"
            self._set_state("done", f"Done: {len(result.rows)} cells{failed}. <code>.to_pandas()</code> and "
                                    "<b>Save CSV</b> give the numbers.")

    def _failed(self, exc: BaseException) -> None:
        self._busy(False)
        self.progress.bar_style = "danger"
        self._fail(exc, title="The sweep failed")

    def __repr__(self) -> str:
        return f"LatencySweep({self.onnx_path!r}, state={self.state!r})"
