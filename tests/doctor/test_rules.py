"""Rules tested alone: Memcpy placement (needs no GPU), provider spellings, inputs with other values,
models that fail in PyTorch, and ExportError carrying the diagnosis."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core.placement import NodePlacement, Placement
from workbench.doctor import diagnose, export_with_diagnosis
from workbench.doctor.attempt import Setting, other_values
from workbench.doctor.context import at_least_two, other_exporter_spec
from workbench.doctor.rules_run import memcpy_findings
from workbench.doctor.rules_setup import _suggest, provider_findings


def test_memcpy_next_to_a_gpu_provider():
    nodes = [NodePlacement("/lin/Gemm", "Gemm", "CUDAExecutionProvider"),
             NodePlacement("Memcpy_token_1", "MemcpyToHost", "CUDAExecutionProvider"),
             NodePlacement("/post/NonMaxSuppression", "NonMaxSuppression", "CPUExecutionProvider"),
             NodePlacement("Memcpy_token_2", "MemcpyFromHost", "CPUExecutionProvider")]
    placed = Placement(nodes, ["CUDAExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
                       ["Memcpy_token_1", "Memcpy_token_2"])
    [finding] = memcpy_findings(placed)
    assert finding.code == "EP003" and finding.node == "/post/NonMaxSuppression"
    assert finding.evidence["memcpy_count"] == 2 and finding.evidence["provider"] == "CUDAExecutionProvider"
    cpu_only = Placement(nodes[2:3], ["CPUExecutionProvider"], ["CPUExecutionProvider"], [])
    assert memcpy_findings(cpu_only) == []


def test_provider_spelling_and_availability():
    known = ["CUDAExecutionProvider", "CPUExecutionProvider", "TensorrtExecutionProvider"]
    assert _suggest("CudaExecutionProvider", known) == "CUDAExecutionProvider"
    assert _suggest("cpu", known, ["x"], ["y"]) is None
    assert _suggest("input", ["x", "y"], ["x"], ["y"]) == "x" and _suggest("logits", ["x", "y"], ["x"], ["y"]) == "y"
    config = wb.SessionConfig(providers=("CPUExecutionProvider",))
    setting = Setting(wb.ModelCase("toy", nn.Identity(), (torch.zeros(1),), config=config))
    assert provider_findings(setting) == []
    typo = setting.replace(config=wb.SessionConfig(providers=("CpuExecutionProvider",)))
    [finding] = provider_findings(typo)
    assert finding.code == "EP001" and finding.evidence["suggestion"] == "CPUExecutionProvider"
    assert finding.retry is not None and finding.retry.change["providers"] == ["CPUExecutionProvider"]


def test_other_values_and_sizes():
    x = torch.rand(3, 4) + 1
    ids = torch.randint(0, 9, (3, 4))
    samples = other_values((x, ids), 3)
    assert len(samples) == 3 and torch.equal(samples[0][0], -x)
    assert all(s[0].shape == x.shape and s[1].dtype == ids.dtype for s in samples)
    assert all(int(s[1].min()) >= int(ids.min()) and int(s[1].max()) <= int(ids.max()) for s in samples)
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), dynamic_axes={"x": {0: "batch"}})
    one = Setting(wb.ModelCase("toy", nn.Linear(4, 4), (torch.zeros(1, 4),), spec))
    assert at_least_two(one)[0].shape == (2, 4)
    two = one.replace(example_inputs=(torch.zeros(3, 4),))
    assert at_least_two(two) is two.example_inputs and two.spec is spec and one.example_inputs[0].shape == (1, 4)
    flipped = one.replace(eval_mode=True, tolerance="fp16")
    assert flipped.eval_mode and flipped.tolerance_name == "fp16" and flipped.key() != one.key()
    assert one.replace(eval_mode=False).key() == one.key()
    assert other_exporter_spec(spec).exporter == "torchscript" and other_exporter_spec(spec).opset == 17
    assert other_exporter_spec(spec.replace(exporter="torchscript", opset=13)).opset == 18


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) @ torch.ones(5, 5)  # shapes do not fit


def test_model_failing_in_pytorch_is_a_finding_not_an_exception(tmp_path):
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), exporter="torchscript", opset=17)
    d = diagnose(Broken().eval(), (torch.zeros(2, 4),), spec=spec, work_dir=tmp_path)
    assert not d.ok and d.codes == ["TORCH001"] and d.stages["export"] is False
    assert "RuntimeError" in d.finding("TORCH001").evidence["error"]


class Hist(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.histc(x, bins=4, min=-1.0, max=1.0)


def test_export_error_carries_the_diagnosis(tmp_path):
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), exporter="torchscript", opset=17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(wb.ExportError) as info:
            export_with_diagnosis(Hist().eval(), (torch.zeros(2, 4),), tmp_path / "h.onnx", spec=spec, retry=False)
    diagnosis = info.value.diagnosis
    assert diagnosis is not None and diagnosis.codes == ["OP001"]
    assert diagnosis.finding("OP001").evidence["op"] == "aten::histc"
    assert "Diagnosis:" in str(info.value) and "[OP001]" in str(info.value)
    assert not (tmp_path / "h.onnx").exists()
