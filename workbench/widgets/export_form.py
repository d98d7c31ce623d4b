"""``ExportForm``: the export spec as a form; the Export button runs ``wb.export`` off the kernel's
main thread and shows the result, or the failure with the doctor's diagnosis."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core.compare import run_torch
from workbench.core.export import ExportResult, check_spec, export
from workbench.core.inputs import as_input_tuple, forward_arity
from workbench.core.spec import ExportSpec
from workbench.errors import ExportError
from workbench.widgets._base import Panel, Worker, error_html, escape, shows_errors
from workbench.widgets.axes import AxesEditor

_SPINNER = ("<style>@keyframes wb-spin {to {transform: rotate(360deg);}}</style>"
            "<span style='display:inline-block;width:12px;height:12px;border:2px solid #0969da;"
            "border-right-color:transparent;border-radius:50%;animation:wb-spin .8s linear infinite;"
            "vertical-align:-2px;margin-right:6px'></span>")


def default_path(model: nn.Module) -> str:
    """``<model class in snake_case>.onnx`` in the working directory."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(model).__name__).lower()
    return f"{name or 'model'}.onnx"


def _prefill(model: nn.Module, inputs: tuple[Any, ...], spec: ExportSpec | None) -> tuple[ExportSpec, list[tuple[int, ...]], BaseException | None]:
    """The spec with its names filled in (``wb.check_spec``) and the output shapes of one run;
    on a failure, names from the forward signature and the exception to show."""
    problem: BaseException | None = None
    try:
        filled = check_spec(model, inputs, spec)
    except Exception as exc:  # shown in the form; the fields still get sensible names
        problem = exc
        _, _, params = forward_arity(model)
        names = tuple(params[: len(inputs)]) if len(params) >= len(inputs) else tuple(f"input_{i}" for i in range(len(inputs)))
        filled = spec or ExportSpec()
        if len(filled.input_names) != len(inputs):
            filled = filled.replace(input_names=names)
    try:
        out_shapes = [tuple(o.shape) for o in run_torch(model, inputs)]
    except Exception as exc:
        problem = problem or exc
        out_shapes = [() for _ in filled.output_names]
    return filled, out_shapes, problem


class ExportForm(Panel):
    """Fields for the names, dynamic axes, opset, exporter and output path of an export.

    ``path`` is the last successful export's file ('' before one): other widgets follow it.
    """

    path = traitlets.Unicode("", help="The exported ONNX file ('' until an export succeeded).")
    result = traitlets.Instance(ExportResult, allow_none=True, help="The last successful ExportResult.")
    exception = traitlets.Instance(BaseException, allow_none=True, help="The last failure, if the last export failed.")
    diagnosis = traitlets.Any(None, help="The doctor's diagnosis of the last failure, when the doctor is installed.")

    def __init__(self, model: nn.Module, example_inputs: Any, spec: ExportSpec | None = None, *,
                 path: str | Path | None = None, use_cache: bool = True) -> None:
        self.model = model
        self.example_inputs = as_input_tuple(example_inputs)
        self.use_cache = use_cache
        self._worker: Worker[ExportResult] = Worker("workbench-export")
        self._cancelled = False
        filled, out_shapes, problem = _prefill(model, self.example_inputs, spec)
        out_names = list(filled.output_names)
        out_names += [f"output_{i}" for i in range(len(out_names), len(out_shapes))]
        self.axes = AxesEditor(list(zip(filled.input_names, [tuple(t.shape) for t in self.example_inputs])),
                               list(zip(out_names, out_shapes)), filled.dynamic_axes)
        self.base_spec = filled
        self.opset = widgets.BoundedIntText(value=filled.opset, min=7, max=25, description="opset",
                                            layout=widgets.Layout(width="160px"))
        self.exporter = widgets.ToggleButtons(options=["dynamo", "torchscript"], value=filled.exporter,
                                              tooltips=["torch.export-based (opset >= 18)", "TorchScript tracing"],
                                              style={"button_width": "100px"})
        self.output_path = widgets.Text(value=str(path or default_path(model)), description="output",
                                        layout=widgets.Layout(width="460px"))
        self.export_button = widgets.Button(description="Export", button_style="primary", icon="play")
        self.export_button.add_class("wb-export-button")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("wb-cancel-button")
        self.export_button.on_click(lambda _: self.export())
        self.cancel_button.on_click(lambda _: self.cancel())
        title = widgets.HTML(f"<b>Export</b> <code>{escape(type(model).__name__)}</code> "
                             f"on inputs {escape(', '.join(str(list(t.shape)) for t in self.example_inputs))}")
        options = widgets.HBox([self.exporter, self.opset], layout=widgets.Layout(align_items="center"))
        buttons = widgets.HBox([self.output_path, self.export_button, self.cancel_button])
        super().__init__(children=[title, self.axes, options, buttons, self.status])
        self.add_class("wb-export-form")
        if problem is not None:
            self._fail(problem, title="The example does not fit the model or spec; fix it before exporting")
        else:
            self._set_state("idle", "Ready to export. Edit the names and axes above, then press <b>Export</b>.")

    def spec_from_fields(self) -> ExportSpec:
        """The ``ExportSpec`` the fields describe (``SpecError`` if they break its rules)."""
        return self.base_spec.replace(input_names=self.axes.input_names(), output_names=self.axes.output_names(),
                                      dynamic_axes=self.axes.dynamic_axes(), opset=int(self.opset.value),
                                      exporter=self.exporter.value)

    @shows_errors
    def export(self) -> None:
        """The Export button: ``wb.export`` on a worker thread; see ``wait()``."""
        if self._worker.running:
            return
        spec = self.spec_from_fields()
        target = Path(self.output_path.value.strip()).expanduser()
        model, inputs, use_cache = self.model, self.example_inputs, self.use_cache
        self._cancelled = False
        self._busy(True)
        self._set_state("running", f"{_SPINNER}Exporting with {escape(spec.exporter)} (opset {spec.opset}) "
                                   f"to <code>{escape(target)}</code>\u2026")

        def job(cancel: threading.Event) -> ExportResult:
            result = export(model, inputs, target, spec, use_cache=use_cache)
            _ = result.summary  # summarize here, off the main thread
            return result

        def tick(elapsed: float) -> None:
            if self.state == "running":
                self._set_state("running", f"{_SPINNER}Exporting with {escape(spec.exporter)} (opset {spec.opset}) "
                                           f"to <code>{escape(target)}</code>\u2026 {elapsed:.0f} s")

        self._worker.start(job, self._done, lambda exc: self._failed(exc, spec), tick=tick)

    def cancel(self) -> None:
        """Stop waiting for the running export. The exporter cannot be interrupted: it finishes in
        the background and its result is discarded (``path`` does not change)."""
        if not self._worker.running:
            return
        self._cancelled = True
        self._worker.cancel()
        self._busy(False)
        self._set_state("cancelled", "Cancelled. The exporter cannot be interrupted: it finishes in the "
                                     "background and its result will not be used.")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running export and its display are done (for scripts and tests)."""
        return self._worker.wait(timeout)

    def _busy(self, busy: bool) -> None:
        self.export_button.disabled = busy
        self.cancel_button.disabled = not busy

    def _done(self, result: ExportResult) -> None:
        if self._cancelled:
            return
        self._busy(False)
        self.exception = None
        self.diagnosis = None
        self._set_state("done", result_html(result))
        self.result = result
        self.path = str(result.path)

    def _failed(self, exc: BaseException, spec: ExportSpec) -> None:
        """Show the failure at once; then, for an exporter failure, ask the doctor and show its answer."""
        if self._cancelled:
            return
        diagnosis = getattr(exc, "diagnosis", None)
        ask_doctor = diagnosis is None and isinstance(exc, ExportError) and doctor_available()
        stage = getattr(exc, "stage", None) or ("spec" if type(exc).__name__ == "SpecError" else "export")
        title = f"Export failed at the {stage} stage"
        self.exception = exc
        self.diagnosis = diagnosis
        waiting = f"<p>{_SPINNER}Asking the doctor what went wrong\u2026</p>" if ask_doctor else ""
        self._fail(exc, title=title, details=waiting + failure_details(exc, diagnosis))
        if ask_doctor:
            diagnosis = run_doctor(self.model, self.example_inputs, spec)
            if self._cancelled or self.exception is not exc:
                return
            self.diagnosis = diagnosis
            self._fail(exc, title=title, details=failure_details(exc, diagnosis))
        self._busy(False)

    def __repr__(self) -> str:
        return f"ExportForm({type(self.model).__name__}, state={self.state!r}, path={self.path!r})"


def doctor_available() -> bool:
    """Whether ``workbench.doctor.diagnose`` can be imported."""
    try:
        from workbench import doctor
    except ImportError:
        return False
    return callable(getattr(doctor, "diagnose", None))


def run_doctor(model: nn.Module, inputs: tuple[Any, ...], spec: ExportSpec) -> Any:
    """``workbench.doctor.diagnose(model, inputs, spec)`` when the doctor is installed, else ``None``;
    a doctor that fails returns its own exception (shown as such)."""
    try:
        from workbench import doctor
    except ImportError:
        return None
    diagnose = getattr(doctor, "diagnose", None)
    if diagnose is None:
        return None
    try:
        return diagnose(model, inputs, spec)
    except Exception as exc:  # the doctor's own failure is shown, it must not hide the export's
        return exc


def diagnosis_html(diagnosis: Any) -> str:
    if diagnosis is None:
        return ""
    if isinstance(diagnosis, BaseException):
        return f"<details><summary>The doctor could not diagnose it</summary>{error_html(diagnosis)}</details>"
    to_html = getattr(diagnosis, "_repr_html_", None)
    body = to_html() if callable(to_html) else f"<pre style='white-space: pre-wrap'>{escape(diagnosis)}</pre>"
    return f"<div class='wb-diagnosis'><b>Diagnosis</b>{body}</div>"


def failure_details(exc: BaseException, diagnosis: Any) -> str:
    warnings = getattr(exc, "warnings", None) or []
    parts = [diagnosis_html(diagnosis)]
    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        parts.append(f"<details><summary>{len(warnings)} warning(s)</summary><ul>{items}</ul></details>")
    return "".join(parts)


def result_html(result: ExportResult) -> str:
    """What an export produced: file, timings, the graph's inputs/outputs and size, warnings."""
    s = result.summary
    how = "from the cache" if result.cached else f"in {result.duration_s:.2f} s"
    io = "".join(f"<tr><td>{kind}</td><td><code>{escape(t.name)}</code></td><td>{escape(t.dtype)}</td>"
                 f"<td><code>{escape(t.shape_text)}</code></td></tr>"
                 for kind, items in (("input", s.inputs), ("output", s.outputs)) for t in items)
    warn = "".join(f"<li>{escape(w)}</li>" for w in result.warnings)
    checker = "valid" if s.checker_ok else f"checker: {escape(s.checker_message) or 'not run'}"
    return (f"<b>Exported</b> {how} with {escape(result.exporter)} (opset {result.opset}) to "
            f"<code>{escape(result.path)}</code><br>"
            f"{s.node_count} nodes, {s.parameter_count:,} parameters, {s.file_bytes / 2**20:.2f} MiB, {checker}"
            f"<table class='wb-table' style='margin-top:4px'>{io}</table>"
            + (f"<details><summary>{len(result.warnings)} warning(s)</summary><ul>{warn}</ul></details>" if warn else
               "<small>No warnings.</small>"))
