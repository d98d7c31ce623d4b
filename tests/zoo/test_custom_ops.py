"""The custom-operator demo models: each kind builds a ModelCase that runs in PyTorch; the
TorchScript-exported ones carry their custom op into the graph."""

from __future__ import annotations

import warnings

import pytest
import torch

import workbench as wb
from workbench.zoo import custom_ops


@pytest.mark.parametrize("kind", list(custom_ops.KINDS))
def test_each_kind_is_a_model_case(kind: str):
    case = custom_ops.model(kind)
    assert isinstance(case, wb.ModelCase) and case.name == f"head_{kind}"
    assert case.spec.exporter == custom_ops.KINDS[kind][1] and case.description == custom_ops.KINDS[kind][2]
    assert case.example_inputs[0].shape == (4, 16) and case.make_inputs(batch=2)[0].shape == (2, 16)
    with torch.inference_mode():
        assert case.model(*case.example_inputs).shape == (4, 4)


def test_unknown_kind():
    with pytest.raises(wb.InvalidInputError, match="No demo model of kind 'nope'"):
        custom_ops.model("nope")


def test_private_domain_op_reaches_the_graph(tmp_path):
    case = custom_ops.model("private")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = wb.export(case.model, case.example_inputs, tmp_path / "private.onnx", spec=case.spec, use_cache=False)
    assert f"{custom_ops.PRIVATE_DOMAIN}::ScaledTanh" in wb.summarize(result.out, check=False).ops
