"""ExportForm: fields prefilled by a run of the model off the main thread, the spec and the fields in
sync both ways, export off the main thread, quick shape probes after every export (a failing one shown
as the doctor's finding, with a retry), failures shown."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import workbench as wb
import workbench.widgets.export_form as export_form
from workbench.doctor import Finding
from workbench.widgets import ExportForm
from workbench.doctor.quick_probe import probe_finding
from workbench.zoo.broken import baked_reshape
from workbench.errors import ExportError
from workbench.widgets.axes import AxesEditor


class Unexportable(nn.Module):
    """The torchscript exporter has no ONNX symbolic for eigvals: fails fast at the translate stage."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvals(x).real


def _form(*args: Any, **kwargs: Any) -> ExportForm:
    form = ExportForm(*args, **kwargs)
    assert form.wait(60)  # the run of the model that fills in the outputs
    return form


def test_fields_are_prefilled_from_the_spec(mlp: wb.ModelCase) -> None:
    form = _form(mlp.model, mlp.example_inputs, spec=mlp.spec)
    assert form.axes.input_names() == ("x",) and form.axes.output_names() == ("y",)
    assert form.axes.dynamic_axes() == {"x": {0: "batch"}, "y": {0: "batch"}}
    assert [r.shape for r in form.axes.rows] == [(2, 16), (2, 4)]
    assert form.opset.value == 18 and form.exporter.value == "dynamo"
    assert form.out_field.value == "mlp.onnx" and form.state == "idle" and form.onnx_model == ""
    assert form.spec == wb.check_spec(mlp.model, mlp.example_inputs, spec=mlp.spec) and not form.export_button.disabled


def test_the_model_runs_off_the_main_thread(mlp: wb.ModelCase, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-fill (check_spec and one run of the model) is the worker's: the form appears at once."""
    threads: list[str] = []
    release = threading.Event()
    real = export_form.check_spec

    def slow(*args: Any, **kwargs: Any) -> wb.ExportSpec:
        threads.append(threading.current_thread().name)
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_form, "check_spec", slow)
    form = ExportForm(mlp.model, mlp.example_inputs, spec=mlp.spec)
    assert form.state == "running" and form.export_button.disabled and form.spec is None
    assert form.axes.input_names() == ("x",) and form.axes.output_rows == []  # inputs known, outputs not yet
    release.set()
    assert form.wait(60) and threads == ["workbench-read-model"]
    assert form.axes.output_names() == ("y",) and form.state == "idle" and not form.export_button.disabled


def test_export_called_at_once_waits_for_the_model_to_be_read(mlp: wb.ModelCase, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``ExportForm(...).export()`` in one cell (as a script does): the export runs after the pre-fill."""
    release = threading.Event()
    real = export_form.check_spec

    def slow(*args: Any, **kwargs: Any) -> wb.ExportSpec:
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_form, "check_spec", slow)
    form = ExportForm(mlp.model, mlp.example_inputs, spec=mlp.spec.replace(exporter="torchscript", opset=17),
                      out=tmp_path / "early.onnx")
    form.export()
    assert form.state == "running" and form.export_button.disabled
    release.set()
    assert form.wait(60) and form.state == "done", form.error
    assert form.result.spec.output_names == ("y",) and form.onnx_model == str(tmp_path / "early.onnx")
    assert not form.export_button.disabled


def test_from_case(mlp: wb.ModelCase, tmp_path: Path) -> None:
    form = ExportForm.from_case(mlp, out=tmp_path / "m.onnx")
    assert form.wait(60) and form.axes.output_names() == ("y",) and form.out_field.value == str(tmp_path / "m.onnx")


def test_without_a_spec_names_come_from_forward_and_outputs(mlp: wb.ModelCase) -> None:
    form = _form(mlp.model, mlp.example_inputs)
    assert form.axes.input_names() == ("x",)  # MLP.forward(self, x)
    assert form.axes.output_names() == ("output",)
    assert form.axes.dynamic_axes() == {}


def test_fields_make_the_spec(mlp: wb.ModelCase) -> None:
    form = _form(mlp.model, mlp.example_inputs)
    form.axes.row("x").name.value = "features"
    form.axes.row("features").dims[0].value = "n"
    form.axes.row("output").dims[0].value = "n"
    form.exporter.value, form.opset.value = "torchscript", 17
    spec = form.spec_from_fields()
    assert spec == wb.ExportSpec(input_names=("features",), output_names=("output",),
                                 dynamic_axes={"features": {0: "n"}, "output": {0: "n"}}, exporter="torchscript", opset=17)


def test_export_runs_off_the_main_thread_and_sets_onnx_model(mlp: wb.ModelCase, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = export_form.export

    def spy(*args: Any, **kwargs: Any) -> wb.ExportResult:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_form, "export", spy)
    form = _form(mlp.model, mlp.example_inputs, spec=mlp.spec.replace(exporter="torchscript", opset=17),
                 out=tmp_path / "mlp.onnx")
    files: list[str] = []
    form.observe(lambda change: files.append(change["new"]), names="onnx_model")
    form.export_button.click()
    assert form.wait(60)
    assert threads == ["workbench-export"]
    assert form.state == "done" and form.error == "" and form.exception is None
    assert files == [str(tmp_path / "mlp.onnx")] and Path(form.onnx_model).exists()
    assert form.result is not None and form.result.summary.inputs[0].dims == ("batch", 16)
    html = form.status.value
    assert "Exported" in html and "torchscript" in html and "[batch, 16]" in html
    assert form.result._repr_html_() in html  # the result's own HTML
    assert not form.export_button.disabled and form.cancel_button.disabled


def test_exporter_failure_is_shown_with_the_diagnosis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Diagnosis:
        def _repr_html_(self) -> str:
            return "<p>EIGVALS-HAS-NO-SYMBOLIC: use the dynamo exporter</p>"

    calls: list[Any] = []
    fake = types.ModuleType("workbench.doctor")
    fake.diagnose = lambda model, inputs, spec: calls.append(spec) or Diagnosis()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "workbench.doctor", fake)
    monkeypatch.setattr(wb, "doctor", fake, raising=False)
    form = _form(Unexportable().eval(), (torch.randn(3, 3),), spec=wb.ExportSpec(exporter="torchscript", opset=17),
                 out=tmp_path / "bad.onnx")
    form.export()
    assert form.wait(60)
    assert form.state == "failed" and isinstance(form.exception, wb.ExportError)
    assert "Export failed at the translate stage" in form.status.value
    assert "linalg_eigvals" in form.error
    assert "EIGVALS-HAS-NO-SYMBOLIC" in form.status.value and isinstance(form.diagnosis, Diagnosis)
    assert calls and calls[0].exporter == "torchscript"
    assert form.onnx_model == "" and not (tmp_path / "bad.onnx").exists()


def test_without_the_doctor_the_message_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_form, "doctor_available", lambda: False)
    form = _form(Unexportable().eval(), (torch.randn(3, 3),), spec=wb.ExportSpec(exporter="torchscript", opset=17),
                 out=tmp_path / "bad.onnx")
    form.export()
    assert form.wait(60) and form.state == "failed" and form.diagnosis is None
    assert "UnsupportedOperatorError" in form.status.value and "Diagnosis" not in form.status.value


def test_bad_fields_end_in_a_visible_error(mlp: wb.ModelCase) -> None:
    form = _form(mlp.model, mlp.example_inputs, spec=mlp.spec)
    form.axes.row("y").name.value = ""  # an output without a name
    form.export_button.click()  # the handler raises SpecError: it must be shown, not lost
    assert form.state == "failed" and "SpecError" in form.error and "non-empty" in form.status.value


def test_cancel_discards_the_running_export(mlp: wb.ModelCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = export_form.export

    def slow(*args: Any, **kwargs: Any) -> wb.ExportResult:
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_form, "export", slow)
    form = _form(mlp.model, mlp.example_inputs, spec=mlp.spec.replace(exporter="torchscript", opset=17),
                 out=tmp_path / "mlp.onnx")
    form.export()
    assert form.state == "running" and form.export_button.disabled and not form.cancel_button.disabled
    form.cancel_button.click()
    assert form.state == "cancelled" and not form.export_button.disabled
    release.set()
    assert form.wait(60)
    assert form.state == "cancelled" and form.onnx_model == "" and form.result is None


def test_a_model_in_training_mode_is_flagged_before_export(mlp: wb.ModelCase) -> None:
    model = wb.zoo.get("mlp").model.train()
    form = _form(model, mlp.example_inputs)
    assert form.state == "failed" and "training mode" in form.error
    assert form.axes.input_names() == ("x",)  # still prefilled from the signature


def test_the_doctor_diagnosis_is_shown(tmp_path: Path) -> None:
    """The real workbench.doctor: the failure is shown at once, then the diagnosis with its code."""
    form = _form(Unexportable().eval(), (torch.randn(3, 3),), spec=wb.ExportSpec(exporter="torchscript", opset=17),
                 out=tmp_path / "bad.onnx")
    form.export()
    assert form.wait(240) and form.state == "failed"
    codes = getattr(form.diagnosis, "codes", [])
    assert codes, form.diagnosis
    assert "Diagnosis" in form.status.value and codes[0] in form.status.value


# ---------------------------------------------------------------- shape probes after every export


def test_probes_run_after_every_export_off_the_main_thread(mlp: wb.ModelCase, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = export_form.quick_probe

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_form, "quick_probe", spy)
    form = _form(mlp.model, mlp.example_inputs, spec=mlp.spec.replace(exporter="torchscript", opset=17),
                 out=tmp_path / "mlp.onnx")
    for _ in range(2):  # the second export comes from the cache: probed all the same
        form.export()
        assert form.wait(60) and form.state == "done", form.error
    assert threads == ["workbench-export", "workbench-export"]
    assert form.probe is not None and form.probe.ok and form.finding is None
    assert [c.sizes for c in form.probe.cases] == [{"batch": 1}, {"batch": 3}]
    assert "runs and matches PyTorch at batch=1; batch=3" in form.status.value
    assert form.retry_button.layout.display == "none"


def test_a_spec_without_dynamic_axes_is_not_probed(mlp: wb.ModelCase, tmp_path: Path) -> None:
    form = _form(mlp.model, mlp.example_inputs, spec=wb.ExportSpec(exporter="torchscript", opset=17),
                 out=tmp_path / "static.onnx")
    form.export()
    assert form.wait(60) and form.state == "done" and form.probe is None and form.finding is None
    assert "No dynamic input axis" in form.status.value


def test_a_baked_shape_is_shown_as_the_doctors_finding(tmp_path: Path) -> None:
    """A TorchScript export of attention holds the example's sizes in a Reshape: valid at the example,
    failing at other sizes. The form says so with DYN002, its fix and a retry button."""
    case = baked_reshape()  # torchscript, input_ids [2, 5] with batch and seq dynamic
    form = ExportForm.from_case(case, out=tmp_path / "baked.onnx")
    form.export()
    assert form.wait(120)
    assert form.state == "failed" and isinstance(form.finding, Finding) and form.finding.code == "DYN002"
    assert form.error == "DYN002: A shape was baked into the graph by tracing"
    assert form.finding.evidence["op_type"] == "Reshape" and form.finding.evidence["exporter"] == "torchscript"
    assert form.finding.retry is not None and form.finding.retry.change == {"exporter": "dynamo", "opset": 18}
    html = form.status.value
    assert "[DYN002]" in html and "Exported" in html and form.finding._repr_html_() in html
    assert "torch.export tracks shapes symbolically" in html  # the fix, from the codes table
    assert form.probe is not None and not form.probe.ok and form.exception is None
    assert form.onnx_model == str(tmp_path / "baked.onnx")  # the file runs at the example: panels may show it
    assert form.retry_button.layout.display != "none" and "dynamo" in form.retry_button.description


@pytest.mark.slow
def test_the_retry_reexports_with_dynamo_and_the_probes_pass(tmp_path: Path) -> None:
    form = ExportForm.from_case(baked_reshape(), out=tmp_path / "baked.onnx")
    form.export()
    assert form.wait(120) and form.finding is not None
    finding = form.finding
    form.retry_button.click()
    assert form.wait(240) and form.state == "done", form.error
    assert form.exporter.value == "dynamo" and form.opset.value == 18 and form.result.spec.exporter == "dynamo"
    assert form.finding is None and form.probe is not None and form.probe.ok
    assert finding.retry is not None and finding.retry.ok is True
    assert "Retry" in form.status.value and "PASSES" in form.status.value
    assert form.retry_button.layout.display == "none"


def test_a_size_one_example_is_retried_from_a_resized_example(mlp: wb.ModelCase, tmp_path: Path) -> None:
    """DYN001 (an axis specialized at size 1): the retry re-exports from the example resized to 2."""
    report = wb.ProbeReport([wb.ProbeCase({"batch": 3}, [(3, 16)], "ort_failed",
                                          message="FeedError: Input 'x' has a static size 1 on axis 0")],
                            ["batch"], {"batch": 1}, {"x": [0]})
    spec = mlp.spec.replace(exporter="torchscript", opset=17)
    finding = probe_finding(report, spec)
    assert finding is not None and finding.code == "DYN001" and finding.evidence["static_in_graph"] == {"x": [0]}
    assert finding.retry is not None and finding.retry.change == {"example_sizes": {"batch": 2}}
    form = _form(mlp.model, mlp.example_inputs[0][:1], spec=spec, out=tmp_path / "one.onnx")
    form.finding = finding
    form.retry()
    assert form.wait(60) and form.state == "done", form.error
    assert form.example_inputs[0].shape == (2, 16) and "[2, 16]" in form.title.value
    assert finding.retry.ok is True


def test_spec_and_fields_follow_each_other(mlp: wb.ModelCase) -> None:
    """Every control of the form has a trait: ``spec``. Setting it moves the fields; editing a field sets it."""
    form = _form(mlp.model, mlp.example_inputs, spec=mlp.spec)
    form.spec = form.spec.replace(exporter="torchscript", opset=17, input_names=("features",),
                                  dynamic_axes={"features": {0: "n"}, "y": {0: "n"}})
    assert form.exporter.value == "torchscript" and form.opset.value == 17
    assert form.axes.input_names() == ("features",) and form.axes.output_names() == ("y",)
    assert form.axes.dynamic_axes() == {"features": {0: "n"}, "y": {0: "n"}}
    form.opset.value = 16
    assert form.spec.opset == 16
    form.axes.row("y").name.value = "scores"
    form.axes.row("features").dims[0].value = "batch"
    assert form.spec.output_names == ("scores",) and form.spec.dynamic_axes == {"features": {0: "batch"},
                                                                                 "scores": {0: "n"}}
    form.exporter.value = "dynamo"  # dynamo emits opset >= 18: the opset follows
    assert form.opset.value == 18 and form.spec.exporter == "dynamo" and form.spec.opset == 18
    form.axes.row("scores").name.value = ""  # half-typed: the spec keeps its last valid state
    assert form.spec.output_names == ("scores",)


def test_export_warnings_open_on_a_click_and_probe_problems_are_cut_at_a_word() -> None:
    from workbench.widgets._shapes import probe_html
    from workbench.widgets.export_form import failure_details

    exc = ExportError("export failed", stage="export",
                      warnings=["TracerWarning: <b>converting</b> a tensor", "UserWarning: second"])
    html = failure_details(exc, None)
    assert "2 warnings</summary>" in html and "warning(s)" not in html and "&lt;b&gt;converting" in html
    assert failure_details(ExportError("no warnings", stage="export"), None) == ""
    long = RuntimeError("IndexError: index out of range in self " + "with a long explanation " * 20)
    shown = probe_html(None, None, long)
    assert "full text" in shown and "\u2026" in shown and "index out of range" in shown


def test_the_axes_note_wraps_at_normal_line_spacing() -> None:
    editor = AxesEditor([("x", (2, 3))], [], {})
    assert "line-height: 1.4" in editor.note.value and "wb-axes-note" in editor.note.value
