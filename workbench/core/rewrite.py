"""Attention rewrite: ``nn.TransformerEncoderLayer`` as the BERT attention pattern ONNX Runtime fuses.

``nn.MultiheadAttention`` projects Q, K and V with one packed weight (``in_proj_weight``) and splits
the result, and its exported graph (dynamo or TorchScript) never matches the attention patterns of
``onnxruntime.transformers.optimizer``: the optimizer reports "Attention not fused". ``fusable_attention``
returns a copy of a model whose encoder layers compute the same function with three separate
projections, ``(q @ k^T) / sqrt(d)``, softmax, ``@ v`` and the output projection: the subgraph the
optimizer's ``FusionAttention`` recognizes (one ``Attention`` node per layer on CPU). The original model
is left as it is; the copy shares no parameters with it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["FusableEncoderLayer", "RewriteInfo", "fusable_attention"]


@dataclass
class RewriteInfo:
    """What ``fusable_attention`` rewrote: how many layers, their heads and width, and what it skipped."""

    layers: int
    num_heads: int
    hidden_size: int
    skipped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.layers > 0


class FusableSelfAttention(nn.Module):
    """Self-attention with separate Q/K/V projections, numerically ``nn.MultiheadAttention`` (self, no weights)."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        dim, heads = mha.embed_dim, mha.num_heads
        self.heads, self.head_dim = heads, dim // heads
        self.batch_first = True  # nn.TransformerEncoder.forward reads it from its first layer
        weight = mha.in_proj_weight.detach()
        bias = mha.in_proj_bias.detach() if mha.in_proj_bias is not None else torch.zeros(3 * dim)
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        for i, lin in enumerate((self.query, self.key, self.value)):
            lin.weight.data.copy_(weight[i * dim:(i + 1) * dim])
            lin.bias.data.copy_(bias[i * dim:(i + 1) * dim])
        self.output = nn.Linear(dim, dim, bias=mha.out_proj.bias is not None)
        self.output.weight.data.copy_(mha.out_proj.weight.detach())
        if mha.out_proj.bias is not None:
            self.output.bias.data.copy_(mha.out_proj.bias.detach())
        self.scale = math.sqrt(self.head_dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.query(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.key(x).view(b, s, self.heads, self.head_dim).permute(0, 2, 3, 1)
        v = self.value(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k) / self.scale
        if bias is not None:
            scores = scores + bias
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.output(context.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))


def _mask_bias(src_mask: torch.Tensor | None, padding: torch.Tensor | None, dtype: torch.dtype
               ) -> torch.Tensor | None:
    """The additive attention bias ``nn.MultiheadAttention`` builds from its masks (True/-inf = masked)."""
    bias = None
    for mask, shape in ((src_mask, None), (padding, "padding")):
        if mask is None:
            continue
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))
        mask = mask.to(dtype)
        mask = mask[:, None, None, :] if shape == "padding" else mask
        bias = mask if bias is None else bias + mask
    return bias


class FusableEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (batch_first) with ``FusableSelfAttention``; same forward signature."""

    def __init__(self, layer: nn.TransformerEncoderLayer) -> None:
        super().__init__()
        self.self_attn = FusableSelfAttention(layer.self_attn)
        self.linear1, self.linear2 = copy.deepcopy(layer.linear1), copy.deepcopy(layer.linear2)
        self.norm1, self.norm2 = copy.deepcopy(layer.norm1), copy.deepcopy(layer.norm2)
        self.norm_first = layer.norm_first
        self.activation = layer.activation

    def _sa(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return self.self_attn(x, bias)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if is_causal and src_mask is None:
            n = src.shape[1]
            src_mask = torch.triu(torch.ones(n, n, dtype=torch.bool, device=src.device), diagonal=1)
        bias = _mask_bias(src_mask, src_key_padding_mask, src.dtype)
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), bias)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, bias))
        return self.norm2(x + self._ff(x))


def _why_not(layer: nn.TransformerEncoderLayer) -> str | None:
    """Why ``layer`` cannot be rewritten (None: it can)."""
    attn = layer.self_attn
    if not attn.batch_first:
        return "batch_first=False (the rewrite keeps (batch, seq, dim) layouts)"
    if not attn._qkv_same_embed_dim or attn.in_proj_weight is None:
        return "separate kdim/vdim"
    if attn.bias_k is not None or attn.add_zero_attn:
        return "add_bias_kv / add_zero_attn"
    return None


def fusable_attention(model: nn.Module) -> tuple[nn.Module, RewriteInfo]:
    """A copy of ``model`` with each ``nn.TransformerEncoderLayer`` as a ``FusableEncoderLayer``.

    Returns ``(copy, info)``; ``info.layers`` is 0 (and the copy unchanged) when the model has no
    layer the rewrite fits. ``info.num_heads``/``hidden_size`` are what the transformer optimizer
    needs (the dynamic reshapes of an export do not show them as constants).
    """
    twin = copy.deepcopy(model).eval()
    info = RewriteInfo(0, 0, 0)
    for name, module in list(twin.named_modules()):
        if isinstance(module, nn.TransformerEncoder):
            module.use_nested_tensor = False  # its nested-tensor path reads the packed in_proj_weight
        for child_name, child in list(module.named_children()):
            if not isinstance(child, nn.TransformerEncoderLayer):
                continue
            reason = _why_not(child)
            if reason:
                info.skipped.append(f"{name + '.' if name else ''}{child_name}: {reason}")
                continue
            setattr(module, child_name, FusableEncoderLayer(child).eval())
            info.layers += 1
            info.num_heads, info.hidden_size = child.self_attn.num_heads, child.self_attn.embed_dim
    return twin, info

