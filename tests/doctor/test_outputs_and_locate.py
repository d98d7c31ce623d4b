"""Output flattening (``core._export_outputs``), the errors it raises, and ``doctor.locate`` on small models."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core._export_outputs import output_leaves, output_names_for, tensor_leaves
from workbench.doctor import diagnose
from workbench.doctor.locate import locate, return_site
from workbench.errors import NonTensorOutputError, OutputNamesError


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    extra: torch.Tensor | None = None


class Pair(NamedTuple):
    a: torch.Tensor
    b: torch.Tensor


class FakeCache:
    """Stands for a transformers cache: a class named ...Cache that is not a tensor."""


class DynamicCache(FakeCache):
    pass


def test_output_leaves_paths_and_names():
    t = torch.zeros(1)
    leaves = output_leaves(OrderedDict(x=t, y=(t, [t]), z=Out(t), w=Pair(t, t), n=None, k=3))
    paths = [p for p, _ in leaves]
    assert paths == ["output.x", "output.y[0]", "output.y[1][0]", "output.z.logits", "output.w.a", "output.w.b", "output.k"]
    assert output_names_for(paths)[:4] == ("x", "y_0", "y_1_0", "z_logits")
    assert len(tensor_leaves((t, DynamicCache(), {"a": t}))) == 2


def test_a_cache_object_is_named_not_a_dtype_error():
    with pytest.raises(NonTensorOutputError, match=r"DynamicCache at output\[1\].*use_cache") as info:
        output_leaves((torch.zeros(1), DynamicCache()))
    assert info.value.is_cache and info.value.path == "output[1]" and info.value.stage == "outputs"
    with pytest.raises(NonTensorOutputError, match="object at output.o") as info:
        output_leaves({"o": object()})
    assert not info.value.is_cache


class ReturnsCache(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return x * 2, DynamicCache()


class TwoOutputs(nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"hidden": x + 1, "pooled": x.mean(-1)}


def test_export_raises_precise_errors(tmp_path: Path):
    with pytest.raises(NonTensorOutputError, match="DynamicCache"):
        wb.export(ReturnsCache().eval(), (torch.randn(2, 3),), tmp_path / "a.onnx")
    with pytest.raises(OutputNamesError, match=r"output_names=\('hidden', 'pooled'\)") as info:
        wb.export(TwoOutputs().eval(), (torch.randn(2, 3),), tmp_path / "b.onnx",
                  spec=wb.ExportSpec(output_names=("hidden",), exporter="torchscript", opset=17))
    assert info.value.suggested == ("hidden", "pooled") and info.value.count == 2


def test_out001_and_out002_on_small_models(tmp_path: Path):
    d = diagnose(ReturnsCache().eval(), (torch.randn(2, 3),), spec=wb.ExportSpec(exporter="torchscript", opset=17),
                 work_dir=tmp_path / "a")
    finding = d.finding("OUT001")
    assert d.codes == ["OUT001"] and finding is not None and finding.retry is not None and finding.retry.ok
    assert "return x * 2, DynamicCache()" in finding.evidence["source"]
    spec = wb.ExportSpec(output_names=("hidden",), exporter="torchscript", opset=17)
    d = diagnose(TwoOutputs().eval(), (torch.randn(2, 3),), spec=spec, work_dir=tmp_path / "b")
    finding = d.finding("OUT002")
    assert finding is not None and finding.retry is not None and finding.retry.ok, d.text()
    assert "output_names=['hidden', 'pooled']" in finding.retry.action


class Inner(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")  # the line locate must name


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Identity(), Inner()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def test_locate_names_the_innermost_model_line_and_module():
    model = Outer()
    try:
        model(torch.zeros(1))
    except RuntimeError as exc:
        loc = locate(model, [exc], str(exc))
    assert loc is not None and loc.module == "blocks.1" and loc.module_type == "Inner"
    assert loc.model_frame is not None and 'raise RuntimeError("boom")' in loc.model_frame.source
    text = 'from user code:\n   File "%s", line %d, in forward\n    x = block(x)\n' % (__file__, Outer.forward.__code__.co_firstlineno + 2)
    assert locate(model, [], text).frame.source == "x = block(x)"
    site = return_site(TwoOutputs(), "pooled")
    assert site is not None and "pooled" in site.frame.source


class DataDependentBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = torch.nonzero(x > 0)
        if idx.shape[0] > 2:  # a size only known at run time decides a branch
            return x * 2
        return x - 1


@pytest.mark.slow
def test_unbacked_size_branch_is_data005(tmp_path: Path):
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), dynamic_axes={"x": {0: "batch"}})
    d = diagnose(DataDependentBranch().eval(), (torch.randn(4, 3),), spec=spec, work_dir=tmp_path)
    finding = d.finding("DATA005")
    assert finding is not None and finding.evidence["symbol"] == "u0", d.text()
    assert "idx.shape[0] > 2" in str(finding.evidence.get("source")), finding.text()


def test_the_tensor_outputs_wrapper_leaves_the_users_modes_alone():
    from workbench.doctor.wrappers import TensorOutputs

    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # the user's mix: training, with dropout switched off
    wrapped = TensorOutputs(model)
    assert wrapped.training and model.training and not model[1].training
    model.eval()
    assert not TensorOutputs(model).training and not model[0].training
