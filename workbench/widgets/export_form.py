"""``ExportForm``: the export spec as a form; the Export button runs ``wb.export`` off the kernel's
main thread, then quick shape probes of the file, and shows the result (a failing probe as the
doctor's finding, with a one-click retry), or the failure with the doctor's diagnosis.

The form asks the model nothing on the main thread: the input rows come from the example's shapes,
and the output rows appear once a worker has run the model (``wb.check_spec``) to learn them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets
from torch import nn

from workbench.core._format import esc
from workbench.core.case import ModelCase
from workbench.core.export import ExportResult, check_spec, export
from workbench.core.feeds import run_torch
from workbench.core.inputs import as_input_tuple, forward_arity, resize_inputs
from workbench.core.probe import ProbeReport
from workbench.core.spec import ExportSpec
from workbench.errors import ExportError, WorkbenchError
from workbench.widgets._base import SPINNER, Panel, Worker, error_html, shows_errors, warnings_html
from workbench.doctor.quick_probe import EXPORTERS, probe_finding, quick_probe
from workbench.widgets._shapes import probe_html, retried_html
from workbench.widgets._traits import OnnxFile
from workbench.widgets.axes import AxesEditor


def default_out(model: nn.Module) -> str:
    """``<model class in snake_case>.onnx`` in the working directory."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(model).__name__).lower()
    return f"{name or 'model'}.onnx"


def input_names(model: nn.Module, count: int, spec: ExportSpec | None) -> tuple[str, ...]:
    """The spec's input names where it has one per input, else the forward's parameter names."""
    if spec is not None and len(spec.input_names) == count:
        return tuple(spec.input_names)
    _, _, params = forward_arity(model)
    return tuple(params[:count]) if len(params) >= count else tuple(f"input_{i}" for i in range(count))


def form_title(model: nn.Module, example_inputs: tuple[Any, ...]) -> str:
    return (f"<b>Export</b> <code>{esc(type(model).__name__)}</code> "
            f"on inputs {esc(', '.join(str(list(t.shape)) for t in example_inputs))}")


@dataclass
class Prefill:
    """What one run of the model tells the form: the spec with its names filled in, the output
    shapes, and the problem to show (``None`` when the example fits the model and spec)."""

    spec: ExportSpec
    output_shapes: list[tuple[int, ...]]
    problem: BaseException | None = None


def prefill(model: nn.Module, inputs: tuple[Any, ...], spec: ExportSpec | None) -> Prefill:
    """``wb.check_spec`` and one run of the model (the worker's job; failures become ``problem``)."""
    problem: BaseException | None = None
    try:
        filled = check_spec(model, inputs, spec=spec)
    except Exception as exc:  # shown in the form; the fields still get sensible names
        problem = exc
        filled = (spec or ExportSpec()).replace(input_names=input_names(model, len(inputs), spec))
    try:
        shapes = [tuple(o.shape) for o in run_torch(model, inputs)]
    except Exception as exc:
        problem = problem or exc
        shapes = [() for _ in filled.output_names]
    return Prefill(filled, shapes, problem)


class ExportForm(Panel):
    """Fields for the names, dynamic axes, opset, exporter and output file of an export.

    ``onnx_model`` is the last successful export's file ('' before one): other widgets follow it.
    After every export the form runs quick shape probes (``wb.probe_shapes`` at small sizes of the
    dynamic axes, on the worker); a failing probe is shown as the doctor's finding (``finding``),
    with a button that re-exports with the other exporter (``retry()``). ``spec`` and the fields
    follow each other: setting ``spec`` moves the fields, editing a field sets ``spec``.
    """

    onnx_model = OnnxFile("", help="The exported ONNX file ('' until an export succeeded).")
    result = traitlets.Instance(ExportResult, allow_none=True, help="The last successful ExportResult.")
    spec = traitlets.Instance(ExportSpec, allow_none=True,
                              help="The spec the fields show (None until the model ran); setting it moves the fields.")
    exception = traitlets.Instance(BaseException, allow_none=True, help="The last failure, if the last export failed.")
    diagnosis = traitlets.Any(None, help="The doctor's diagnosis of the last failure, when the doctor is installed.")
    probe = traitlets.Instance(ProbeReport, allow_none=True,
                               help="The quick shape probes of the last export (None: not run, or no dynamic axis).")
    finding = traitlets.Any(None, help="The doctor's Finding for the last export's failing probe (None: they pass).")

    def __init__(self, model: nn.Module, example_inputs: Any, *, spec: ExportSpec | None = None,
                 out: str | Path | None = None, use_cache: bool = True) -> None:
        self.model = model
        self.example_inputs = as_input_tuple(example_inputs)
        self.use_cache = use_cache
        self._reader: Worker[Prefill] = Worker("workbench-read-model")
        self._worker: Worker[ExportResult] = Worker("workbench-export")
        self._syncing = False
        self._retrying: Any = None  # the finding whose retry the running export is
        start = spec or ExportSpec()
        names = input_names(model, len(self.example_inputs), spec)
        self.axes = AxesEditor(list(zip(names, [tuple(t.shape) for t in self.example_inputs])), [], start.dynamic_axes)
        self.opset = widgets.BoundedIntText(value=start.opset, min=7, max=25, description="opset",
                                            layout=widgets.Layout(width="160px"))
        self.opset.add_class("wb-opset")
        self.exporter = widgets.ToggleButtons(options=list(EXPORTERS), value=start.exporter,
                                              tooltips=["torch.export-based (opset >= 18)", "TorchScript tracing"],
                                              style={"button_width": "100px"})
        self.exporter.add_class("wb-exporter")
        self.out_field = widgets.Text(value=str(out or default_out(model)), description="output",
                                      layout=widgets.Layout(width="460px"))
        self.export_button = widgets.Button(description="Export", button_style="primary", icon="play")
        self.export_button.add_class("wb-export-button")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("wb-cancel-button")
        self.retry_button = widgets.Button(description="Re-export", icon="redo", button_style="warning",
                                           layout=widgets.Layout(display="none", width="auto"))
        self.retry_button.add_class("wb-retry-button")
        self.export_button.on_click(lambda _: self.export())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.retry_button.on_click(lambda _: self.retry())
        self.title = widgets.HTML(form_title(model, self.example_inputs))
        options = widgets.HBox([self.exporter, self.opset], layout=widgets.Layout(align_items="center"))
        buttons = widgets.HBox([self.out_field, self.export_button, self.cancel_button, self.retry_button],
                               layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__(children=[self.title, self.axes, options, buttons, self.status])
        self.add_class("wb-export-form")
        self._follow_fields(*self.axes.input_rows, self.opset, self.exporter)
        self._read_the_model(spec)

    @classmethod
    def from_case(cls, case: ModelCase, **options: Any) -> ExportForm:
        """A form for ``case``'s model, example inputs and spec; ``options`` as for the constructor."""
        return cls(case.model, case.example_inputs, spec=case.spec, **options)

    def _read_the_model(self, spec: ExportSpec | None) -> None:
        """Run the model once on the worker to learn its outputs; Export waits for it."""
        model, inputs = self.model, self.example_inputs
        self.export_button.disabled = True
        self._set_state("running", f"{SPINNER}Running the model once to read its outputs\u2026")
        self._reader.start(lambda cancel: prefill(model, inputs, spec), self._show_prefill,
                           lambda exc: self._show_prefill(Prefill(spec or ExportSpec(), [], exc)))

    def _show_prefill(self, filled: Prefill) -> None:
        spec = filled.spec
        named = len(spec.output_names)
        names = list(spec.output_names) + [f"output_{i}" for i in range(named, len(filled.output_shapes))]
        self.axes.set_outputs(list(zip(names, filled.output_shapes)), spec.dynamic_axes)
        self._follow_fields(*self.axes.output_rows)
        self.spec = spec
        if self._worker.running:  # export() was called meanwhile: it shows its own state
            return
        self.export_button.disabled = False
        if filled.problem is not None:
            self._fail(filled.problem, title="The example does not fit the model or spec; fix it before exporting")
        else:
            self._set_state("idle", "Ready to export. Edit the names and axes above, then press <b>Export</b>.")

    def _follow_fields(self, *controls: Any) -> None:
        """Observe the fields (and each row's name and dims): an edit sets ``spec``."""
        for control in controls:
            fields = [control.name, *control.dims] if hasattr(control, "dims") else [control]
            for field in fields:
                field.observe(self._spec_from_an_edit, names="value")

    def _spec_from_an_edit(self, change: dict[str, Any]) -> None:
        if self._syncing or self.spec is None:
            return
        if change["owner"] is self.exporter and change["new"] == "dynamo" and self.opset.value < 18:
            self.opset.value = 18  # the dynamo exporter emits opset 18 or newer (this edit sets spec)
            return
        try:
            self.spec = self.spec_from_fields()
        except WorkbenchError:  # a half-typed field: Export shows the problem
            pass

    @traitlets.observe("spec")
    def _move_the_fields(self, change: dict[str, Any]) -> None:
        """``spec`` was set (by the model's run, an edit or the user): the fields show it."""
        spec: ExportSpec | None = change["new"]
        if spec is None:
            return
        self._syncing = True
        try:
            for rows, names in ((self.axes.input_rows, spec.input_names), (self.axes.output_rows, spec.output_names)):
                for row, name in zip(rows, names):
                    row.name.value = name
                    row.set_axes(spec.dynamic_axes.get(name, {}))
            self.opset.value = spec.opset
            self.exporter.value = spec.exporter
        finally:
            self._syncing = False

    def spec_from_fields(self) -> ExportSpec:
        """The ``ExportSpec`` the fields describe (``SpecError`` if they break its rules)."""
        return (self.spec or ExportSpec()).replace(
            input_names=self.axes.input_names(), output_names=self.axes.output_names(),
            dynamic_axes=self.axes.dynamic_axes(), opset=int(self.opset.value), exporter=self.exporter.value)

    @shows_errors
    def export(self) -> None:
        """The Export button: ``wb.export`` on a worker thread, then the quick shape probes; see
        ``wait()``. Called while the model is still being read, the export starts once it is (with
        the fields as they are then)."""
        if self._worker.running:
            return
        spec = None if self._reader.running else self.spec_from_fields()  # bad fields: shown at once
        out = Path(self.out_field.value.strip()).expanduser()
        model, inputs, use_cache = self.model, self.example_inputs, self.use_cache
        self._busy(True)
        doing = (f"Exporting with {esc(self.exporter.value)} (opset {self.opset.value}) to "
                 f"<code>{esc(out)}</code>\u2026")
        self._set_state("running", SPINNER + doing)
        used: list[ExportSpec] = []  # the spec, for the doctor if the export fails

        def job(cancel: threading.Event) -> ExportResult:
            self._reader.wait()
            used.append(spec or self.spec_from_fields())
            result = export(model, inputs, out, spec=used[0], use_cache=use_cache)
            _ = result.summary  # summarize here, off the main thread
            return result

        def tick(elapsed: float) -> None:
            if self.state == "running":
                self._set_state("running", f"{SPINNER}{doing} {elapsed:.0f} s")

        self._worker.start(job, self._show_export, lambda exc: self._show_failure(exc, used[0] if used else spec),
                           tick=tick)

    @shows_errors
    def retry(self) -> None:
        """The finding's retry (the button): export again with its change (the other exporter, or for
        DYN001 the example resized to 2 on its size-1 axes); the new export is probed in turn."""
        finding = self.finding
        if finding is None or finding.retry is None or self._worker.running:
            return
        change = dict(finding.retry.change)
        resized = change.pop("example_sizes", None)
        self.spec = spec = self.spec_from_fields().replace(**change)
        if resized:
            self.example_inputs = resize_inputs(self.example_inputs, spec.input_names, spec.dynamic_axes, resized)
            self.title.value = form_title(self.model, self.example_inputs)
        self._retrying = finding
        self.export()

    def cancel(self) -> None:
        """Stop waiting for the running export. The exporter cannot be interrupted: it finishes in
        the background and its result is discarded (``onnx_model`` does not change)."""
        if not self._worker.running:
            return
        self._worker.cancel()
        self._busy(False)
        self._set_state("cancelled", "Cancelled. The exporter cannot be interrupted: it finishes in the "
                                     "background and its result will not be used.")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until reading the model, and the running export, its probes and their display are done."""
        return self._reader.wait(timeout) and self._worker.wait(timeout)

    def _busy(self, busy: bool) -> None:
        self.export_button.disabled = busy
        self.cancel_button.disabled = not busy
        self.retry_button.disabled = busy

    def _show_export(self, result: ExportResult) -> None:
        """The export is done (on the worker): probe other sizes, then show the result and the verdict."""
        if self._worker.cancelled:
            return
        self._set_state("running", f"{SPINNER}Exported; running the shape probes at other sizes\u2026")
        try:
            report = quick_probe(self.model, result.out, self.example_inputs, result.spec)
        except Exception as exc:  # the file may still be fine at the example: say the probes could not run
            report, problem = None, exc
        else:
            problem = None
        if self._worker.cancelled:
            return
        finding = probe_finding(report, result.spec) if report is not None else None
        retried, self._retrying = self._retrying, None
        if retried is not None and retried.retry is not None:
            retried.retry.ok = finding is None
        self._busy(False)
        self.exception = None
        self.diagnosis = None
        self.probe, self.finding = report, finding
        self._show_retry(finding)
        body = retried_html(retried, finding) + result_html(result) + probe_html(report, finding, problem)
        if finding is None:
            self._set_state("done", body)
        else:
            self._set_state("failed", body)
            self.error = f"{finding.code}: {finding.title}"
        self.result = result
        self.onnx_model = str(result.out)

    def _show_retry(self, finding: Any) -> None:
        retry = getattr(finding, "retry", None)
        if retry is None:
            self.retry_button.layout.display = "none"
            return
        self.retry_button.description = retry.action[0].upper() + retry.action[1:]
        self.retry_button.tooltip = f"[{finding.code}] {retry.action}"
        self.retry_button.layout.display = None

    def _show_failure(self, exc: BaseException, spec: ExportSpec | None) -> None:
        """Show the failure at once; then, for an exporter failure, ask the doctor and show its answer."""
        if self._worker.cancelled:
            return
        diagnosis = getattr(exc, "diagnosis", None)
        ask_doctor = diagnosis is None and isinstance(exc, ExportError) and doctor_available()
        stage = getattr(exc, "stage", None) or ("spec" if type(exc).__name__ == "SpecError" else "export")
        title = f"Export failed at the {stage} stage"
        self._retrying = None
        self.exception = exc
        self.diagnosis = diagnosis
        self.probe, self.finding = None, None
        self._show_retry(None)
        waiting = f"<p>{SPINNER}Asking the doctor what went wrong\u2026</p>" if ask_doctor else ""
        self._fail(exc, title=title, details=waiting + failure_details(exc, diagnosis))
        if ask_doctor:
            diagnosis = run_doctor(self.model, self.example_inputs, spec)
            if self._worker.cancelled or self.exception is not exc:
                return
            self.diagnosis = diagnosis
            self._fail(exc, title=title, details=failure_details(exc, diagnosis))
        self._busy(False)

    def __repr__(self) -> str:
        return f"ExportForm({type(self.model).__name__}, state={self.state!r}, onnx_model={self.onnx_model!r})"


def doctor_available() -> bool:
    """Whether ``workbench.doctor.diagnose`` can be imported."""
    try:
        from workbench import doctor
    except ImportError:
        return False
    return callable(getattr(doctor, "diagnose", None))


def run_doctor(model: nn.Module, inputs: tuple[Any, ...], spec: ExportSpec | None) -> Any:
    """``workbench.doctor.diagnose(model, inputs, spec=spec)`` when the doctor is installed, else
    ``None``; a doctor that fails returns its own exception (shown as such)."""
    try:
        from workbench import doctor
    except ImportError:
        return None
    diagnose = getattr(doctor, "diagnose", None)
    if diagnose is None:
        return None
    try:
        return diagnose(model, inputs, spec=spec)
    except Exception as exc:  # the doctor's own failure is shown, it must not hide the export's
        return exc


def diagnosis_html(diagnosis: Any) -> str:
    """The doctor's diagnosis by its own ``_repr_html_`` (or its text, escaped)."""
    if diagnosis is None:
        return ""
    if isinstance(diagnosis, BaseException):
        return f"<details><summary>The doctor could not diagnose it</summary>{error_html(diagnosis)}</details>"
    to_html = getattr(diagnosis, "_repr_html_", None)
    body = to_html() if callable(to_html) else f"<pre style='white-space: pre-wrap'>{esc(diagnosis)}</pre>"
    return f"<div class='wb-diagnosis'><b>Diagnosis</b>{body}</div>"


def failure_details(exc: BaseException, diagnosis: Any) -> str:
    """The doctor's diagnosis, then the exporter's warnings ("2 warnings" that opens to them)."""
    return diagnosis_html(diagnosis) + warnings_html([str(w) for w in getattr(exc, "warnings", None) or []])


def result_html(result: ExportResult) -> str:
    """What an export produced, by the result's own ``_repr_html_``, and the graph's summary folded."""
    how = "from the cache" if result.cached else f"in {result.duration_s:.2f} s"
    return (f"<b>Exported</b> {how} to <code>{esc(result.out)}</code>{result._repr_html_()}"
            f"<details><summary>Inputs, outputs and parameters</summary>{result.summary._repr_html_()}</details>")

