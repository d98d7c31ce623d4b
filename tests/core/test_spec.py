"""ExportSpec takes the opsets torch takes, and wb.export says when the file is not at the one asked for."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core.spec import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET


def test_limits_are_torchs():
    from torch.onnx import _constants

    assert DEFAULT_OPSET == _constants.ONNX_DEFAULT_OPSET
    assert MIN_OPSET == _constants.ONNX_MIN_OPSET


@pytest.mark.parametrize("opset", [14, 17, 18, 20, MAX_OPSET])
def test_dynamo_accepts_opsets_below_18(opset):
    assert wb.ExportSpec(opset=opset).opset == opset  # the old check refused everything below 18


@pytest.mark.parametrize("opset", [6, MAX_OPSET + 1, 18.0, True, "18"])
def test_opsets_torch_does_not_take(opset):
    with pytest.raises(wb.SpecError, match=f"between {MIN_OPSET} and {MAX_OPSET}"):
        wb.ExportSpec(opset=opset)


def test_dynamo_below_18_converts_down(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    result = wb.export(model, (torch.randn(2, 4),), tmp_path / "m.onnx", spec=wb.ExportSpec(opset=17))
    opsets = {o.domain: o.version for o in onnx.load(str(result.out)).opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == 17
    assert not any("OpsetWarning" in w for w in result.warnings)


def test_an_op_without_an_older_form_stays_at_18_and_warns(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)).eval()  # LayerNormalization is opset 17+
    result = wb.export(model, (torch.randn(2, 4),), tmp_path / "m.onnx", spec=wb.ExportSpec(opset=13))
    opsets = {o.domain: o.version for o in onnx.load(str(result.out)).opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == 18
    assert any("asked for opset 13, the file has opset 18" in w for w in result.warnings)
