"""Layerwise divergence: scopes from both exporters' graphs, and the first divergent node of a graph
whose weights were edited (a controlled ONNX-side drift)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

import workbench as wb
from workbench.doctor import layerwise
from workbench.core.divergence import node_scopes, value_scopes


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = Block()
        self.b2 = Block()
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b2(self.b1(x)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Net, tuple[torch.Tensor], wb.ExportResult]:
    torch.manual_seed(0)
    model = Net().eval()
    x = (torch.randn(4, 8),)
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), exporter="torchscript", opset=17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = wb.export(model, x, tmp_path_factory.mktemp("lw") / "net.onnx", spec=spec)
    return model, x, result


def test_torchscript_names_give_scopes(exported):
    _, _, result = exported
    scopes = node_scopes(onnx.load(str(result.out)))
    assert scopes["/b1/lin/Gemm"] == "b1.lin" and scopes["/b2/act/Relu"] == "b2.act" and scopes["/head/Gemm"] == "head"


def test_dynamo_metadata_gives_scopes_and_types():
    node = helper.make_node("Mul", ["a", "b"], ["gelu"], name="node_gelu")
    for key, value in (("pkg.torch.onnx.name_scopes", "['', 'b1', 'b1.act', 'gelu']"),
                       ("pkg.torch.onnx.class_hierarchy", ("['__main__.M', '__main__.Block', "
                                                           "'torch.nn.modules.activation.GELU', 'aten.gelu.default']"))):
        node.metadata_props.add(key=key, value=value)
    root = helper.make_node("Add", ["gelu", "c"], ["out"], name="node_add")
    root.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'add']")
    graph = helper.make_graph([node, root], "g", [], [])
    scopes = value_scopes(helper.make_model(graph))
    assert scopes["gelu"] == ("b1.act", "GELU", "node_gelu")
    assert scopes["out"][0] == ""


def test_matching_graph_has_no_divergence(exported):
    model, x, result = exported
    div = layerwise(model, result.out, x)
    assert bool(div) and div.first is None and div.first_divergent_node is None
    assert [n.module for n in div.nodes] == ["b1.lin", "b1.act", "b2.lin", "b2.act", "head"]
    assert all(e < 1e-5 for e in div.node_errors.values())
    assert "none beyond fp32" in repr(div) and len(div.to_pandas()) == 5


def test_edited_graph_diverges_at_the_edited_node(exported, tmp_path):
    model, x, result = exported
    proto = onnx.load(str(result.out))
    gemm = next(n for n in proto.graph.node if n.name == "/b2/lin/Gemm")
    weight = next(i for i in proto.graph.initializer if i.name == gemm.input[1])
    array = numpy_helper.to_array(weight).copy()
    array[0, 0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    edited = tmp_path / "edited.onnx"
    onnx.save(proto, str(edited))
    div = layerwise(model, edited, x, scope_source=result.out, graph_label="edited")
    assert div.first_divergent_node == "/b2/lin/Gemm" and div.module == "b2.lin"
    assert div.first is not None and div.first.module_type == "Linear" and not div.first.ok
    assert div.node_errors["/b1/act/Relu"] < 1e-6 and div.node_errors["/b2/lin/Gemm"] > 0.01
    assert "first divergent node '/b2/lin/Gemm'" in repr(div) and "DIVERGES" in div._repr_html_()
    assert np.isfinite(div.first.max_rel)


def test_doctor_reexports_the_core_divergence():
    import workbench.core.divergence as core_div
    import workbench.doctor.divergence as doctor_div

    assert doctor_div.layerwise is core_div.layerwise and doctor_div.Divergence is core_div.Divergence
