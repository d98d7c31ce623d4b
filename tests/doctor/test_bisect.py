"""Optimization bisection on a real ONNX Runtime optimizer that changes results (the opt-in GELU
approximation), and on a graph whose optimizations are harmless."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core.feeds import build_feed
from workbench.doctor import bisect_optimizations
from workbench.doctor.bisect import OPTIMIZERS, REWRITE_RULES, TRANSFORMERS


class GeluNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(32, 32)
        self.act = nn.GELU()
        self.out = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.lin(x)))


@pytest.fixture(scope="module")
def gelu(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = GeluNet().eval()
    x = torch.randn(8, 32) * 4
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), exporter="torchscript", opset=17)
    folder = tmp_path_factory.mktemp("bisect")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = wb.export(model, (x,), folder / "gelu.onnx", spec=spec)
    session = wb.open_session(result.out, wb.SessionConfig(opt_level="disable"))
    inputs = [build_feed(session, [x])]
    expected = [[model(x).detach().numpy()]]
    return result.out, inputs, expected, folder


def test_names_the_optimizer(gelu):
    onnx_model, inputs, expected, folder = gelu
    config = wb.SessionConfig(config_entries={"optimization.enable_gelu_approximation": "1"})
    b = bisect_optimizations(onnx_model, inputs, expected, folder, tolerance="fp32", config=config)
    assert b.drift_from_optimization and b.first_bad_level == "extended" and b.last_good_level == "basic"
    assert b.culprit == "GeluApproximation" and "GeluApproximation" in b.fixers and bool(b)
    assert b.ops_changed.get("com.microsoft::FastGelu") == 1
    assert b.optimized_out is not None and b.optimized_out.exists()
    assert "culprit GeluApproximation" in repr(b) and len(b.to_pandas()) == 3


def test_no_drift_without_the_approximation(gelu):
    onnx_model, inputs, expected, folder = gelu
    b = bisect_optimizations(onnx_model, inputs, expected, folder)
    assert not b.drift_from_optimization and b.first_bad_level is None and b.culprit is None
    assert [c.level for c in b.levels] == ["disable", "basic", "extended", "all"] and "no level drifts" in repr(b)


def test_optimizer_lists():
    assert "GeluApproximation" in OPTIMIZERS["extended"] and "ConstantFolding" in OPTIMIZERS["basic"]
    assert "NchwcTransformer" in OPTIMIZERS["all"]
    for level, names in OPTIMIZERS.items():
        assert names == REWRITE_RULES[level] + TRANSFORMERS[level] and len(set(names)) == len(names)


def test_session_config_entries_reach_onnx_runtime():
    from workbench.core.session import session_options

    so = session_options(wb.SessionConfig(config_entries={"optimization.enable_gelu_approximation": "1"}))
    assert so.get_session_config_entry("optimization.enable_gelu_approximation") == "1"
