"""The tiny ``nn.Module``s of the broken zoo (the doctor's gallery): each carries one export bug on purpose."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn


class TinyMLP(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, d_in: int = 8, hidden: int = 16, d_out: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class Encoder(nn.Module):
    """Embedding -> nn.MultiheadAttention -> mean -> Linear (the TorchScript exporter bakes a Reshape)."""

    def __init__(self, vocab: int = 50, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.head(a.mean(dim=1))


class TinyConv(nn.Module):
    """Conv2d(3, 4, 3) -> global mean -> Linear: input channels are fixed by the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(pixels).mean(dim=(2, 3)))


class SizeGate(nn.Module):
    """Doubles its input for batches larger than 2: a branch on a size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            return x * 2
        return x


class ValueGate(nn.Module):
    """Negates its input when the mean is positive: a branch on a value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            return -x
        return x


class Gated(nn.Module):
    """Linear -> gate -> Linear, with the gate given."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.gate = gate
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.gate(self.fc1(x)))


class Crop(nn.Module):
    """Keeps as many columns as the first value says: a tensor value used as a slice bound."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x[0, 0].abs().item() * 3) + 1
        return x[:, :n]


class Cropper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Linear(8, 8)
        self.crop = Crop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crop(self.scale(x))


class Wrap(nn.Module):
    """Linear, then the given module as ``inner``."""

    def __init__(self, inner: nn.Module, d_in: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(d_in, 8)
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.proj(x))


class Histogram(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.histc(x, bins=4, min=-2.0, max=2.0)


class CumProd(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumprod(x, dim=1)


class UpperMask(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.triu(x)


class NumpyClamp(torch.autograd.Function):
    """Clamps to [0, 1] in numpy, inference only (no backward): torch.export cannot trace it; its
    symbolic serves the TorchScript exporter."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.clip(x.detach().cpu().numpy(), 0.0, 1.0))

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        low = g.op("Constant", value_t=torch.tensor(0.0))
        high = g.op("Constant", value_t=torch.tensor(1.0))
        return g.op("Clip", x, low, high)


class ScaleByTwo(torch.autograd.Function):
    """x * 2, exported (by its symbolic) as a custom-domain op ONNX Runtime has no kernel for."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        return g.op("wbgallery::Scale", x, factor_f=2.0)


class TanhGelu(torch.autograd.Function):
    """Exact GELU in PyTorch, but its symbolic emits the tanh approximation: the graph drifts."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x)

    @staticmethod
    def symbolic(g: Any, x: Any) -> Any:
        def const(v: float) -> Any:
            return g.op("Constant", value_t=torch.tensor(v))

        cube = g.op("Mul", g.op("Mul", x, x), x)
        inner = g.op("Mul", const(math.sqrt(2 / math.pi)), g.op("Add", x, g.op("Mul", const(0.044715), cube)))
        return g.op("Mul", g.op("Mul", const(0.5), x), g.op("Add", const(1.0), g.op("Tanh", inner)))


class Apply(nn.Module):
    """Calls an autograd Function."""

    def __init__(self, fn: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn.apply(x)


class Block(nn.Module):
    def __init__(self, act: nn.Module, dim: int = 16) -> None:
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


class TwoBlocks(nn.Module):
    """Two Linear+activation blocks and a head; the activations are given."""

    def __init__(self, act1: nn.Module, act2: nn.Module, dim: int = 16) -> None:
        super().__init__()
        self.b1 = Block(act1, dim)
        self.b2 = Block(act2, dim)
        self.head = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.b2(self.b1(x)))


class HalfSquare(nn.Module):
    """Squares hidden features in float16 (mixed precision by hand)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x)).half()
        return self.b((h * h).float())


class PaddedEncoder(nn.Module):
    """nn.TransformerEncoder with nested tensors and a padding mask: PyTorch's fast path zeros padding."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=32, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.enc(x, src_key_padding_mask=padding)
