"""``ServePanel``: serve the current export over HTTP (``wb.serve``), load-test it (``wb.load_test``)
with a live plot of throughput and p99 against concurrency, and show the server's own metrics."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import traitlets

from workbench.core._format import esc
from workbench.core.session import SessionConfig
from workbench.errors import InvalidInputError
from workbench.viz.serve import load_figure
from workbench.widgets._base import Panel, Worker, shows_errors
from workbench.widgets._figures import FigureSlot, ResizeNudge
from workbench.widgets._serve_html import levels_table_html, metrics_html, server_html
from workbench.widgets._traits import OnnxFile, checked_sizes, format_sizes, parse_sizes

#: Seconds ``stop()`` and ``close()`` wait for the requests already accepted to be answered.
DRAIN_S = 10.0
#: The sequence length given to a request's symbolic dims past the batch axis (batch is 1).
REQUEST_SEQ = 16


def request_inputs(onnx_model: str, config: SessionConfig | None, *, seq: int = REQUEST_SEQ) -> dict[str, Any]:
    """One request's inputs for ``onnx_model``: batch 1, ``seq`` for the other symbolic dims,
    generated from the graph's own input types (integer ids within the embedding table)."""
    import onnx

    from workbench.core.gate import generate_inputs
    from workbench.core.session import load_session

    session = load_session(onnx_model, config)
    symbols: list[str] = []
    for arg in session.get_inputs():
        symbols.extend(d for d in arg.shape if isinstance(d, str) and d not in symbols)
    sizes = {s: (1 if i == 0 else seq) for i, s in enumerate(symbols)}
    return dict(generate_inputs(session, onnx.load(onnx_model, load_external_data=False), dim_sizes=sizes))


def _number(description: str, value: float, *, kind: type = widgets.BoundedIntText, **limits: float) -> Any:
    field = kind(value=value, description=description, style={"description_width": "initial"},
                 layout=widgets.Layout(width="170px"), **limits)
    return field


def _button(description: str, icon: str, css: str, *, style: str = "", disabled: bool = False) -> widgets.Button:
    button = widgets.Button(description=description, icon=icon, button_style=style, disabled=disabled,
                            layout=widgets.Layout(width="auto"))
    button.add_class(css)
    return button


class ServePanel(Panel):
    """Serve ``onnx_model`` with ``config`` over HTTP on 127.0.0.1 (``wb.serve``), load-test it
    (``wb.load_test``, one level of concurrency after the other, the plot growing as each ends) and
    show the server's metrics. ``server`` is the running ``Server`` (``None`` when stopped);
    ``result`` the last ``LoadResult``. ``close()`` stops the server."""

    onnx_model = OnnxFile("", help="The ONNX file served ('' for none yet).")
    config = traitlets.Instance(SessionConfig, allow_none=True, help="The session config served (None: defaults).")
    max_batch = traitlets.Int(16, help="Most requests the server stacks into one batch (>= 1; 1: no batching).")
    max_wait_ms = traitlets.Float(5.0, help="Longest the oldest queued request waits for a batch to fill (ms, >= 0).")
    concurrency = traitlets.Any([1, 8, 32], help="The load test's levels: requests held in flight (ints >= 1, or text).")
    duration_s = traitlets.Float(3.0, help="Seconds each load level runs (> 0).")
    server = traitlets.Any(None, help="The running Server (None when stopped); read it, do not set it.")
    url = traitlets.Unicode("", help="The running server's URL ('' when stopped).")
    result = traitlets.Any(None, help="The last LoadResult (partial while running or if cancelled).")

    def __init__(self, onnx_model: str | Path = "", *, config: SessionConfig | None = None, max_batch: int = 16,
                 max_wait_ms: float = 5.0, concurrency: str | Sequence[int] = (1, 8, 32), duration_s: float = 3.0,
                 inputs: Mapping[str, Any] | None = None, host: str = "127.0.0.1") -> None:
        """``inputs``: one request's inputs for the load test (default: generated from the graph,
        batch 1); ``host``: where the server listens (127.0.0.1: this machine only)."""
        self.inputs = dict(inputs) if inputs is not None else None
        self.host = host
        self._worker: Worker[Any] = Worker("workbench-serve")
        self._closed = False
        self._served: tuple[str, SessionConfig | None] | None = None
        self._make_controls(max_batch, max_wait_ms, duration_s)
        self._make_buttons()
        self.server_line = widgets.HTML()
        self.server_line.add_class("wb-serve-server")
        self.figure = FigureSlot("serve-load", width="100%")
        self.table = widgets.HTML()
        self.table.add_class("wb-serve-levels")
        self.metrics_box = widgets.HTML()
        self.metrics_box.add_class("wb-serve-metrics")
        super().__init__(children=[widgets.HTML("<b>Serve</b>"), self._controls(), self.status, self.server_line,
                                   self.figure, self.table, self.metrics_box, ResizeNudge()])
        self.add_class("wb-serve-panel")
        self.max_batch, self.max_wait_ms, self.duration_s = max_batch, max_wait_ms, duration_s
        self.concurrency = concurrency
        self._links = [traitlets.link((self, "max_batch"), (self.batch_field, "value")),
                       traitlets.link((self, "max_wait_ms"), (self.wait_field, "value")),
                       traitlets.link((self, "duration_s"), (self.duration_field, "value"))]
        self.levels_field.observe(self._follow_levels_field, names="value")
        self.config = config
        self.onnx_model = onnx_model
        self._say_what_is_ready()

    # ------------------------------------------------------------------ layout

    def _make_controls(self, max_batch: int, max_wait_ms: float, duration_s: float) -> None:
        self.batch_field = _number("max batch", max_batch, min=1, max=4096)
        self.wait_field = _number("max wait (ms)", max_wait_ms, kind=widgets.BoundedFloatText, min=0, max=10_000,
                                  step=0.5)
        self.levels_field = widgets.Text(description="concurrency", continuous_update=False,
                                         style={"description_width": "initial"}, layout=widgets.Layout(width="220px"))
        self.duration_field = _number("seconds per level", duration_s, kind=widgets.BoundedFloatText, min=0.2,
                                      max=600, step=0.5)
        for field, css in ((self.batch_field, "wb-serve-max-batch"), (self.wait_field, "wb-serve-max-wait"),
                           (self.levels_field, "wb-serve-levels-field"), (self.duration_field, "wb-serve-duration")):
            field.add_class(css)

    def _make_buttons(self) -> None:
        self.start_button = _button("Start", "play", "wb-serve-start", style="primary")
        self.stop_button = _button("Stop", "stop", "wb-serve-stop", disabled=True)
        self.load_button = _button("Load test", "tachometer", "wb-serve-load", style="info", disabled=True)
        self.cancel_button = _button("Cancel", "times", "wb-serve-cancel", disabled=True)
        self.metrics_button = _button("Refresh metrics", "refresh", "wb-serve-refresh", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="200px"))
        self.progress_label = widgets.Label("")
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.load_button.on_click(lambda _: self.load_test())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.metrics_button.on_click(lambda _: self.refresh_metrics())

    def _controls(self) -> widgets.VBox:
        wrap = widgets.Layout(flex_flow="row wrap", align_items="center")
        return widgets.VBox([
            widgets.HBox([self.batch_field, self.wait_field, self.start_button, self.stop_button], layout=wrap),
            widgets.HBox([self.levels_field, self.duration_field, self.load_button, self.cancel_button,
                          self.metrics_button], layout=wrap),
            widgets.HBox([self.progress, self.progress_label], layout=wrap),
        ])

    # ------------------------------------------------------------------ traits

    @traitlets.validate("max_batch")
    def _check_max_batch(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise traitlets.TraitError(f"max_batch must be an int >= 1, received {value!r}.")
        return value

    @traitlets.validate("max_wait_ms")
    def _check_max_wait(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value >= 0:
            raise traitlets.TraitError(f"max_wait_ms must be >= 0, received {proposal['value']!r}.")
        return value

    @traitlets.validate("duration_s")
    def _check_duration(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise traitlets.TraitError(f"duration_s must be > 0 seconds, received {proposal['value']!r}.")
        return value

    @traitlets.validate("concurrency")
    def _check_concurrency(self, proposal: dict[str, Any]) -> list[int]:
        return [int(v) for v in checked_sizes(proposal["value"], "concurrency levels") if v is not None]

    @traitlets.observe("concurrency")
    def _write_levels_field(self, change: dict[str, Any]) -> None:
        try:
            if parse_sizes(self.levels_field.value, "concurrency levels") == list(change["new"]):
                return
        except InvalidInputError:
            pass
        self.levels_field.value = format_sizes(change["new"])

    def _follow_levels_field(self, change: dict[str, Any]) -> None:
        try:
            self.concurrency = parse_sizes(change["new"], "concurrency levels")
        except InvalidInputError as exc:
            self._fail(exc, title="Cannot read the concurrency levels")

    @traitlets.observe("onnx_model")
    def _export_changed(self, change: dict[str, Any]) -> None:
        if self.server is not None and change["old"] != change["new"]:
            self._stop_server()
            self._set_state("idle", "The export changed, so the server serving the old one was stopped: press "
                                    "<b>Start</b> to serve the new one.")
        else:
            self._say_what_is_ready()

    @traitlets.observe("config")
    def _config_changed(self, change: dict[str, Any]) -> None:
        if self.server is not None and not self._worker.running:
            label = (change["new"] or SessionConfig()).label()
            self._set_state("done", f"The server still runs the config it started with; press <b>Restart</b> to "
                                    f"serve <code>{esc(label)}</code>.")

    def _say_what_is_ready(self) -> None:
        if self._worker.running or self.server is not None:
            return
        if self.onnx_model:
            self._set_state("idle", f"Ready to serve <code>{esc(Path(self.onnx_model).name)}</code>: pick the "
                                    "batching, then press <b>Start</b>.")
        else:
            self._set_state("idle", "No ONNX model yet: export one to serve it.")

    # ------------------------------------------------------------------ actions

    @shows_errors
    def start(self) -> None:
        """Start the server (restart it where one runs) off the main thread; see ``wait()``."""
        if self._worker.running:
            return
        if not self.onnx_model:
            raise InvalidInputError("There is no ONNX model to serve yet: export one first (or set onnx_model).")
        onnx_model, config = self.onnx_model, self.config
        options = dict(config=config, host=self.host, port=0, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms)
        restart = self.server is not None
        self._busy(True)
        self._set_state("running", f"{'Restarting' if restart else 'Starting'} the server for "
                                   f"<code>{esc(Path(onnx_model).name)}</code>\u2026")

        def job(cancel: threading.Event) -> Any:
            from workbench.core.serve import serve

            self._stop_server()
            return serve(onnx_model, **options)

        self._served = (onnx_model, config)
        self._worker.start(job, self._show_started, self._show_failure)

    def _show_started(self, server: Any) -> None:
        if self._closed:
            server.stop(timeout=DRAIN_S)
            return
        self.server, self.url = server, str(server.url)
        self._busy(False)
        self.server_line.value = server_html(server, self.max_batch, self.max_wait_ms)
        self._set_state("done", f"Serving at <code>{esc(self.url)}</code>: press <b>Load test</b> to measure it.")
        self.refresh_metrics()

    @shows_errors
    def stop(self) -> None:
        """Cancel a load test, then stop the server; the requests it already accepted are answered."""
        was = self.server is not None
        self._worker.cancel()
        self._worker.wait(DRAIN_S)
        self._stop_server()
        self._busy(False)
        if was:
            self._set_state("idle", "Stopped. Press <b>Start</b> to serve again.")

    def _stop_server(self) -> None:
        server, self.server, self.url = self.server, None, ""
        if server is not None:
            server.stop(timeout=DRAIN_S)
        self.server_line.value = ""

    @shows_errors
    def load_test(self) -> None:
        """Run ``wb.load_test`` against the running server, one concurrency level after the other
        (the plot and table grow as each level ends); see ``wait()`` and ``cancel()``."""
        if self._worker.running:
            return
        if self.server is None:
            raise InvalidInputError("No server is running: press Start first.")
        self.concurrency = parse_sizes(self.levels_field.value, "concurrency levels")
        server, levels, duration = self.server, list(self.concurrency), float(self.duration_s)
        inputs = self.inputs
        self.progress.max, self.progress.value, self.progress.bar_style = len(levels), 0, "info"
        self.progress_label.value = f"0/{len(levels)} levels"
        self.result = None
        self._busy(True)
        self._set_state("running", f"Load test: {len(levels)} levels of {duration:g} s against "
                                   f"<code>{esc(self.url)}</code>\u2026")

        def job(cancel: threading.Event) -> Any:
            feed = inputs if inputs is not None else request_inputs(self.onnx_model, self.config)
            return self._run_levels(server, feed, levels, duration, cancel)

        self._worker.start(job, self._show_result, self._show_failure, tick=self._tick, tick_s=0.5)

    def _run_levels(self, server: Any, inputs: Mapping[str, Any], levels: list[int], duration: float,
                    cancel: threading.Event) -> Any:
        """One ``load_test`` per level, the partial result drawn after each; the merged result."""
        from workbench.core.serve import load_test

        merged: Any = None
        for i, level in enumerate(levels):
            self._level_started = (i, level, time.perf_counter())
            part = load_test(server, inputs, concurrency=(level,), duration_s=duration, cancel=cancel)
            merged = part if merged is None else _merge(merged, part)
            self.progress.value = i + 1
            self._draw(merged)
            if part.cancelled or cancel.is_set():
                return dataclasses.replace(merged, cancelled=True)
        return merged

    def _tick(self, elapsed: float) -> None:
        started = getattr(self, "_level_started", None)
        if started is not None:
            i, level, t0 = started
            self.progress_label.value = (f"level {i + 1}/{self.progress.max}: concurrency {level}, "
                                         f"{time.perf_counter() - t0:.0f}/{self.duration_s:g} s")

    def _draw(self, result: Any) -> None:
        """The plot (only when a level was added since the last draw), the table and the metrics."""
        drawn = self.result is not None and list(self.result.levels) == list(result.levels) and self.figure.data
        self.result = result
        if not drawn:
            self.figure.show(load_figure(result))
        self.table.value = levels_table_html(result)
        self.refresh_metrics()

    def cancel(self) -> None:
        """Stop the load test (within its current level); the levels so far are kept."""
        if self._worker.running:
            self._worker.cancel()
            self.cancel_button.disabled = True
            self.progress_label.value += " \u2014 cancelling\u2026"

    def refresh_metrics(self) -> None:
        """Read the server's ``metrics()`` into the metrics table (nothing when stopped)."""
        server = self.server
        try:
            self.metrics_box.value = metrics_html(server.metrics()) if server is not None else ""
        except Exception as exc:  # a metrics read failing must not hide the panel's state
            self.metrics_box.value = f"<span style='color:#cf222e'>Could not read the metrics: {esc(exc)}</span>"

    def _show_result(self, result: Any) -> None:
        self._busy(False)
        self._draw(result)
        self._level_started = None
        errors = sum(sum(lv.errors.values()) for lv in result.levels if lv.errors)
        failed = f", {errors:,} requests failed (the table says which status)" if errors else ""
        if result.cancelled:
            self.progress.bar_style = "warning"
            self._set_state("cancelled", f"Cancelled after {_levels(len(result.levels))}{failed}.")
        else:
            self.progress.bar_style = "success" if not errors else "warning"
            self.progress_label.value = f"{len(result.levels)}/{_levels(len(result.levels))}"
            best = max(result.levels, key=lambda lv: lv.throughput_rps)
            self._set_state("done", f"Done: best {best.throughput_rps:,.0f} requests/s at concurrency "
                                    f"{best.concurrency} (p99 {best.p99_ms:.1f} ms){failed}.")

    def _show_failure(self, exc: BaseException) -> None:
        self._busy(False)
        self._level_started = None
        self.progress.bar_style = "danger"
        self._fail(exc, title="Could not start the server" if self.server is None else "The load test failed")

    def _busy(self, busy: bool) -> None:
        up = self.server is not None
        self.start_button.disabled = busy
        self.start_button.description = "Restart" if up else "Start"
        self.stop_button.disabled = not up
        self.load_button.disabled = busy or not up
        self.cancel_button.disabled = not busy
        self.metrics_button.disabled = not up

    def reload(self) -> None:
        """The served file was rewritten (a re-export to the same path): restart a running server on it."""
        if self.server is not None:
            self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a start or load test and its display are done (for scripts and tests)."""
        return self._worker.wait(timeout)

    def close(self) -> None:
        """Stop the load test and the server, then close the panel."""
        self._closed = True
        self._worker.cancel()
        self._worker.wait(DRAIN_S)
        self._stop_server()
        super().close()

    def __repr__(self) -> str:
        where = f", serving at {self.url}" if self.url else ""
        return f"ServePanel({self.onnx_model!r}, state={self.state!r}{where})"


def _levels(n: int) -> str:
    return f"{n} level" + ("" if n == 1 else "s")


def _merge(merged: Any, part: Any) -> Any:
    """One ``LoadResult`` of the levels so far (the CPU the client used summed)."""
    return dataclasses.replace(merged, levels=[*merged.levels, *part.levels],
                               client_cpu_s=float(merged.client_cpu_s) + float(part.client_cpu_s),
                               cancelled=bool(part.cancelled))
