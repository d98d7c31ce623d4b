"""The eager trace: value escapes with module and source line, autograd Functions, operator lookup."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workbench.doctor.trace import trace_model


class Escapes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = x * 2
        n = int(x[0, 0].abs().item()) + 1
        return torch.cumprod(x[:, :n], dim=1)


class NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        return torch.from_numpy(np.tanh(x.detach().numpy()))

    @staticmethod
    def symbolic(g, x):  # type: ignore[no-untyped-def]
        return g.op("Tanh", x)


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Escapes()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NoBackward.apply(self.inner(self.lin(x)))


def test_escapes_are_located():
    trace = trace_model(Outer().eval(), (torch.ones(2, 4),))
    assert trace.error is None
    kinds = {(e.kind, e.module) for e in trace.escapes_of(in_function=False)}
    assert ("bool", "inner") in kinds and ("item", "inner") in kinds
    branch = trace.escapes_of("bool")[0]
    assert branch.source == "if x.sum() > 0:" and branch.module_type == "Escapes"
    assert branch.location is not None and branch.location.endswith(f"test_trace.py:{branch.location.split(':')[-1]}")
    assert "module 'inner' (Escapes)" in branch.where()


def test_autograd_function_is_recognized():
    trace = trace_model(Outer().eval(), (torch.ones(2, 4),))
    site = trace.autograd_functions["NoBackward"]
    assert site.has_symbolic and site.module == ""
    inside = trace.escapes_of(in_function=True)
    assert inside and inside[0].kind == "numpy" and inside[0].autograd_function == "NoBackward"


def test_find_call_by_exporter_names():
    trace = trace_model(Outer().eval(), (torch.ones(2, 4),))
    assert trace.find_call("aten::cumprod").module == "inner"
    assert trace.find_call("aten.cumprod.default").module == "inner"
    assert trace.find_call("prims.prod").name == "cumprod"  # a decomposition's op finds its source
    assert trace.find_call("aten::histc") is None


def test_errors_are_data():
    trace = trace_model(nn.Linear(4, 4), (torch.ones(2, 3),))
    assert trace.error is not None and "RuntimeError" in trace.error
