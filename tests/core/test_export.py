from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core.export import dynamic_shapes_for


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_dynamo_export_declares_named_dynamic_axes(export_zoo):
    result = export_zoo("text_classifier")
    assert result.out.exists() and result.exporter == "dynamo" and result.opset == 18
    assert result.duration_s > 0 and result.torch_version == torch.__version__
    summary = result.summary
    assert summary.checker_ok
    assert summary.dynamic_inputs == {"input_ids": ["batch", "seq"]}
    assert summary.outputs[0].dims == ("batch", 10)


def test_torchscript_export(export_zoo):
    result = export_zoo("mlp", "torchscript")
    assert result.exporter == "torchscript" and result.opset == 17
    assert result.summary.opsets[""] == 17
    assert result.summary.dynamic_inputs == {"x": ["batch"]}


def test_cache_hit_is_fast_and_invalidated_by_weights_and_spec(mlp, tmp_path):
    path = tmp_path / "mlp.onnx"
    first = wb.export(mlp.model, mlp.example_inputs, path, spec=mlp.spec)
    assert not first.cached
    start = time.perf_counter()
    again = wb.export(mlp.model, mlp.make_inputs(batch=2, seed=5), path, spec=mlp.spec)
    assert time.perf_counter() - start <= 0.2
    assert again.cached and again.fingerprint == first.fingerprint and again.spec == first.spec
    model = wb.zoo.get("mlp").model
    with torch.no_grad():
        model.fc2.bias.add_(1.0)
    changed = wb.export(model, mlp.example_inputs, path, spec=mlp.spec)
    assert not changed.cached
    respec = wb.export(model, mlp.example_inputs, path, spec=mlp.spec.replace(opset=19))
    assert not respec.cached and respec.summary.opsets[""] == 19


def test_cache_ignores_a_file_changed_on_disk(mlp, tmp_path):
    path = tmp_path / "mlp.onnx"
    wb.export(mlp.model, mlp.example_inputs, path, spec=mlp.spec)
    path.write_bytes(path.read_bytes() + b"\0")
    assert not wb.export(mlp.model, mlp.example_inputs, path, spec=mlp.spec).cached


def test_unknown_dynamic_axes_key_raises_before_writing(mlp, tmp_path):
    spec = mlp.spec.replace(dynamic_axes={"X": {0: "batch"}})
    with pytest.raises(wb.SpecError, match=r"dynamic_axes names 'X'.*Did you mean 'x'.*Nothing was written"):
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=spec)
    assert _leftovers(tmp_path) == []


def test_dynamic_axis_out_of_range(mlp, tmp_path):
    spec = mlp.spec.replace(dynamic_axes={"x": {2: "batch"}})
    with pytest.raises(wb.SpecError, match="marks dimension 2.*rank 2"):
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=spec)
    assert _leftovers(tmp_path) == []


def test_training_mode_is_reported_before_writing(mlp, tmp_path):
    model = type(mlp.model)().train()
    with pytest.raises(wb.SpecError, match=r"training mode.*model.eval\(\)"):
        wb.export(model, (torch.randn(2, 16),), tmp_path / "m.onnx")
    assert _leftovers(tmp_path) == []


def test_names_must_match_arity(mlp, tmp_path):
    with pytest.raises(wb.SpecError, match="input_names has 2 name"):
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=mlp.spec.replace(input_names=("a", "b")))
    with pytest.raises(wb.SpecError, match="output_names has 2 name.*returns 1 tensor"):
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=mlp.spec.replace(output_names=("a", "b")))
    with pytest.raises(wb.InvalidInputError, match="takes 1 positional inputs, received 2"):
        wb.export(mlp.model, (torch.randn(2, 16), torch.randn(2, 16)), tmp_path / "m.onnx")
    assert _leftovers(tmp_path) == []


def test_bad_arguments(mlp, tmp_path):
    with pytest.raises(wb.InvalidInputError, match="Expected a torch.nn.Module, received dict"):
        wb.export({"a": 1}, mlp.example_inputs, tmp_path / "m.onnx")
    with pytest.raises(wb.InvalidInputError, match="failed on the example inputs"):
        wb.export(mlp.model, (torch.randn(2, 5),), tmp_path / "m.onnx")
    with pytest.raises(wb.InvalidInputError, match="must be a torch.Tensor or a tuple"):
        wb.export(mlp.model, [1, 2], tmp_path / "m.onnx")
    with pytest.raises(wb.InvalidInputError, match="should end in .onnx"):
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.txt")
    with pytest.raises(wb.SpecError, match="exporter must be"):
        wb.ExportSpec(exporter="onnx")
    with pytest.raises(wb.SpecError, match="opset must be an int between 7 and"):
        wb.ExportSpec(opset=6)


def test_default_spec_uses_forward_names(mlp, tmp_path):
    result = wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx")
    assert result.spec.input_names == ("x",) and result.spec.output_names == ("output",)
    assert result.summary.inputs[0].dims == (2, 16)  # no dynamic axes asked: static


class _Histogram(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.histc(x, bins=4)  # no ONNX translation in either exporter


@pytest.mark.parametrize("exporter,opset,exc_name", [("dynamo", 18, "ConversionError"),
                                                     ("torchscript", 17, "UnsupportedOperatorError")])
def test_failed_export_raises_with_stage_and_leaves_no_file(tmp_path, exporter, opset, exc_name):
    with pytest.raises(wb.ExportError) as info:
        wb.export(_Histogram().eval(), (torch.randn(3, 3),), tmp_path / "bad.onnx",
                  spec=wb.ExportSpec(exporter=exporter, opset=opset))
    err = info.value
    assert err.stage == "translate" and type(err.exception).__name__ == exc_name
    assert "histc" in str(err.exception) and "Nothing was written" in str(err)
    assert _leftovers(tmp_path) == []


def test_interrupted_export_leaves_no_file(mlp, tmp_path, monkeypatch):
    def interrupted(model, args, f, **kwargs):
        Path(f).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        wb.export(mlp.model, mlp.example_inputs, tmp_path / "m.onnx", spec=mlp.spec)
    assert _leftovers(tmp_path) == []


def test_external_data(mlp, tmp_path):
    result = wb.export(mlp.model, mlp.example_inputs, tmp_path / "ext.onnx",
                       spec=mlp.spec.replace(external_data=True, exporter="torchscript", opset=17))
    data = [p for p in tmp_path.iterdir() if p.name.endswith(".data")]
    assert len(data) == 1 and data[0].name.startswith("ext.onnx.")  # a fresh name per export: see _export_files
    assert result.summary.external_data == {data[0].name: data[0].stat().st_size}
    x = mlp.make_inputs(batch=3)
    assert wb.compare(mlp.model, result.out, x)


def test_dynamic_shapes_share_dims_for_shared_symbols():
    spec = wb.zoo.get("bert_like", smoke=True).spec
    shapes = dynamic_shapes_for(spec, [torch.zeros(2, 4)] * 3)
    assert shapes[0][0] is shapes[1][0] is shapes[2][0]
    assert shapes[0][1].__name__ == "seq"


def test_size_one_example_is_warned(tc_smoke, tmp_path):
    result = wb.export(tc_smoke.model, tc_smoke.make_inputs(batch=1), tmp_path / "b1.onnx", spec=tc_smoke.spec)
    assert any("is 1 in the example" in w for w in result.warnings)


def test_cache_sees_edits_through_param_data(mlp, tmp_path):
    model = wb.zoo.get("mlp", smoke=True).model
    path = tmp_path / "m.onnx"
    wb.export(model, mlp.example_inputs, path, spec=mlp.spec)
    model.fc1.weight.data += 0.5  # does not bump the parameter's version counter
    again = wb.export(model, mlp.example_inputs, path, spec=mlp.spec)
    assert not again.cached
    assert wb.compare(model, again.out, mlp.make_inputs(batch=3))


def test_custom_translation_table_is_passed_to_the_dynamo_exporter(tmp_path):
    from onnxscript import opset18 as op

    def relu_as_max(x):  # traced by the exporter with onnxscript ops
        return op.Max(x, op.CastLike(0.0, x))

    model = wb.zoo.get("mlp", smoke=True)
    result = wb.export(model.model, model.example_inputs, tmp_path / "t.onnx", spec=model.spec,
                       custom_translation_table={torch.ops.aten.relu.default: relu_as_max})
    ops = result.summary.ops
    assert ops["Relu"] == 0 and ops["Max"] == 1
    assert wb.compare(model.model, result.out, model.make_inputs(batch=3))
    with pytest.raises(wb.SpecError, match="custom_translation_table .* is for the dynamo exporter"):
        wb.export(model.model, model.example_inputs, tmp_path / "u.onnx",
                  spec=model.spec.replace(exporter="torchscript", opset=17), custom_translation_table={1: 2})
    with pytest.raises(wb.SpecError, match="custom_opsets is for the TorchScript exporter"):
        wb.export(model.model, model.example_inputs, tmp_path / "u.onnx", spec=model.spec, custom_opsets={"x": 1})


_HELPER_MODULE = '''
import torch
from torch import nn


def scale(x):
    return x * {factor}


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return scale(self.fc(x))
'''


def test_cache_sees_an_edit_of_a_module_level_helper_that_forward_calls(tmp_path, monkeypatch):
    import importlib
    import sys

    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc after an edit within one second
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "wb_helper_model.py"
    source.write_text(_HELPER_MODULE.format(factor="2.0"))
    monkeypatch.delitem(sys.modules, "wb_helper_model", raising=False)
    module = importlib.import_module("wb_helper_model")
    x = torch.randn(2, 4)
    out = tmp_path / "scaled.onnx"

    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        return module.Scaled().eval()

    first = wb.export(build(), (x,), out)
    assert not first.cached and wb.export(build(), (x,), out).cached
    source.write_text(_HELPER_MODULE.format(factor="3.0"))  # only the helper changes, not the class
    module = importlib.reload(module)
    again = wb.export(build(), (x,), out)
    assert not again.cached and again.fingerprint != first.fingerprint
    assert wb.compare(build(), again.out, (x,))


class _Chatty(nn.Module):
    """Prints while it is traced, as torch's C++ shape inference does on some models."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if torch.jit.is_tracing():
            print("[W chatty.cpp:1] Warning: printed while tracing", flush=True)
            os.write(2, b"written to fd 2 while tracing\n")
        return self.fc(x)


def test_what_torch_prints_during_the_export_is_kept_on_the_result_not_shown(tmp_path, capfd):
    spec, model = wb.ExportSpec(exporter="torchscript", opset=17), _Chatty().eval()
    result = wb.export(model, (torch.randn(2, 4),), tmp_path / "c.onnx", spec=spec)
    shown = capfd.readouterr()
    assert "while tracing" not in shown.out + shown.err
    assert "written to fd 2 while tracing" in result.torch_output
    assert any("printed while tracing" in w for w in result.warnings)
    again = wb.export(model, (torch.randn(2, 4),), tmp_path / "c.onnx", spec=spec)
    assert again.cached and again.torch_output == result.torch_output


def test_a_failed_export_carries_what_torch_printed(tmp_path):
    with pytest.raises(wb.ExportError) as info:
        wb.export(_Histogram().eval(), (torch.randn(3, 3),), tmp_path / "bad.onnx",
                  spec=wb.ExportSpec(exporter="torchscript", opset=17))
    assert isinstance(info.value.torch_output, str)


def test_the_torchscript_deprecation_warning_is_surfaced(export_zoo):
    result = export_zoo("mlp", "torchscript")  # torch warns since 2.9; wb.export used to filter it out
    assert any("legacy TorchScript-based ONNX export" in w for w in result.warnings)
    assert not any("legacy TorchScript" in w for w in export_zoo("mlp").warnings)
