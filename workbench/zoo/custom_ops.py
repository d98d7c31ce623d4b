"""The custom-operator demo models of notebook 08: small models whose activation is exported by a
symbolic function, by an onnxscript translation, or as an op of a custom domain.

    >>> from workbench.zoo import custom_ops
    >>> case = custom_ops.model("symbolic")          # a ModelCase: model, example inputs, spec
    >>> custom_ops.KINDS                             # kind -> (activation, exporter, what it shows)

Every model is ``Linear(16, 16) -> activation -> Linear(16, 4)``; ``KINDS`` names the activations.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import nn
from torch.onnx import symbolic_helper

from workbench.core.case import ModelCase
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError

__all__ = ["CONTRIB_DOMAIN", "KINDS", "PRIVATE_DOMAIN", "Head", "PrivateScaledTanh", "ScaledTanh", "contrib_fast_gelu",
           "gelu_to_contrib", "library_act", "library_op", "model", "scaled_tanh_onnx"]

#: Where ONNX Runtime keeps its own extra operators (contrib ops): it ships kernels for them.
CONTRIB_DOMAIN = "com.microsoft"
#: A domain of our own: no runtime has kernels for it.
PRIVATE_DOMAIN = "wbtutorial"


class ScaledTanh(torch.autograd.Function):
    """``2 * tanh(x)``; its ``symbolic`` tells the TorchScript exporter to write Tanh and Mul."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * 2.0

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        two = g.op("Constant", value_t=torch.tensor(2.0))
        return g.op("Mul", g.op("Tanh", x), two)


class PrivateScaledTanh(ScaledTanh):
    """``ScaledTanh`` exported as one op of a custom domain, ``wbtutorial::ScaledTanh``."""

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        out = g.op(f"{PRIVATE_DOMAIN}::ScaledTanh", x, scale_f=2.0)
        out.setType(x.type())  # the exporter cannot infer a custom op's output type: state it
        return out


@symbolic_helper.parse_args("v", "s")
def gelu_to_contrib(g: Any, x: Any, approximate: str = "none") -> Any:
    """A symbolic for ``aten::gelu`` that writes ONNX Runtime's contrib ``Gelu`` (or ``FastGelu``
    for the tanh approximation) instead of the exporter's own decomposition."""
    op = "FastGelu" if approximate == "tanh" else "Gelu"
    out = g.op(f"{CONTRIB_DOMAIN}::{op}", x)
    out.setType(x.type())
    return out


@functools.cache
def library_op() -> Any:
    """Define (once) the PyTorch custom op ``wbtutorial::scaled_tanh(x, scale)`` with
    ``torch.library`` and return its overload: the dynamo exporter keeps it as one opaque node."""

    @torch.library.custom_op(f"{PRIVATE_DOMAIN}::scaled_tanh", mutates_args=())
    def scaled_tanh(x: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.tanh(x) * scale

    @scaled_tanh.register_fake
    def _(x: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.empty_like(x)

    return torch.ops.wbtutorial.scaled_tanh.default


def scaled_tanh_onnx(x: Any, scale: float) -> Any:
    """The onnxscript translation of ``wbtutorial::scaled_tanh`` in standard ONNX ops, for
    ``torch.onnx.export(..., dynamo=True, custom_translation_table={op: scaled_tanh_onnx})``."""
    from onnxscript import opset18 as op

    return op.Mul(op.Tanh(x), op.CastLike(scale, x))


def library_act(x: torch.Tensor) -> torch.Tensor:
    """The activation of the "library" model: the custom op with scale 2."""
    return library_op()(x, 2.0)


def contrib_fast_gelu(x: torch.Tensor) -> torch.Tensor:
    """Tanh-approximated GELU; while the dynamo exporter traces it, one ``com.microsoft::FastGelu``."""
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic(f"{CONTRIB_DOMAIN}::FastGelu", (x,), dtype=x.dtype, shape=x.shape, version=1)
    return nn.functional.gelu(x, approximate="tanh")


class Head(nn.Module):
    """``Linear(16, 16) -> act -> Linear(16, 4)`` with the activation given."""

    def __init__(self, act: Callable[[torch.Tensor], torch.Tensor] | nn.Module) -> None:
        super().__init__()
        self.inp = nn.Linear(16, 16)
        self.act = act
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.inp(x)))


#: kind -> (activation, exporter, what it shows)
KINDS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "symbolic": (lambda: ScaledTanh.apply, "torchscript", "autograd.Function with a symbolic in standard ops"),
    "gelu": (lambda: nn.GELU(), "torchscript", "nn.GELU, for a registered aten::gelu symbolic"),
    "private": (lambda: PrivateScaledTanh.apply, "torchscript", "a symbolic writing a custom-domain op"),
    "library": (lambda: library_act, "dynamo", "a torch.library custom op, for an onnxscript translation"),
    "contrib": (lambda: contrib_fast_gelu, "dynamo", "torch.onnx.ops.symbolic writing com.microsoft::FastGelu"),
}


def model(kind: str) -> ModelCase:
    """A demo model of ``kind`` (see ``KINDS``) with example inputs (batch 4) and an export spec
    (batch dynamic; opset 17 for the TorchScript exporter, 18 for dynamo)."""
    if kind not in KINDS:
        raise InvalidInputError(f"No demo model of kind {kind!r}. Choose one of {list(KINDS)}.")
    make_act, exporter, description = KINDS[kind]
    torch.manual_seed(0)
    module = Head(make_act()).eval()

    def make(batch: int | None = None, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return (torch.randn(4 if batch is None else batch, 16, generator=torch.Generator().manual_seed(seed)) * 2,)

    spec = ExportSpec(input_names=("x",), output_names=("y",), dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      exporter=exporter, opset=17 if exporter == "torchscript" else 18)  # type: ignore[arg-type]
    return ModelCase(f"head_{kind}", module, make(), spec, input_factory=make, description=description)
