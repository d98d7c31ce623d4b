"""Small demo models built in code (no downloads), each with inputs and a sensible spec."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError


@dataclass
class ZooModel:
    """A demo model: the module (eval mode), example inputs, an export spec and an input factory."""

    name: str
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    spec: ExportSpec
    input_factory: Callable[..., tuple[torch.Tensor, ...]]
    description: str = ""

    def make_inputs(self, batch: int = 1, seq: int | None = None, *, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Inputs of another batch size (and sequence length where the model has one)."""
        return self.input_factory(batch=batch, seq=seq, seed=seed)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self.example_inputs)
        return f"ZooModel({self.name!r}, inputs={shapes}, exporter={self.spec.exporter!r})"


class TextClassifier(nn.Module):
    """Embedding -> TransformerEncoder -> mean over the sequence -> Linear (the seed's model)."""

    def __init__(self, vocab_size: int = 30000, embed_dim: int = 256, num_classes: int = 10,
                 num_layers: int = 4, num_heads: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        layer = nn.TransformerEncoderLayer(embed_dim, nhead=num_heads, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embed(input_ids))
        return self.classifier(hidden.mean(dim=1))


class ImageClassifier(nn.Module):
    """Conv2d(3, 64, 3) -> ReLU -> global average pool -> Linear(64, 10)."""

    def __init__(self, num_classes: int = 10, channels: int = 64) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv(pixel_values)))
        return self.fc(torch.flatten(x, 1))


class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.output = nn.Linear(hidden, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(hidden)), self._split(self.key(hidden)), self._split(self.value(hidden))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask_bias
        context = torch.softmax(scores, dim=-1) @ v
        b, _, s, _ = context.shape
        return self.output(context.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.attention = BertSelfAttention(hidden, heads)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        hidden = self.attention_norm(hidden + self.attention(hidden, mask_bias))
        ff = self.output(nn.functional.gelu(self.intermediate(hidden)))
        return self.output_norm(hidden + ff)


class BertLike(nn.Module):
    """A small BERT-style encoder in plain torch: word + position + token-type embeddings,
    post-norm layers with a padding mask, and a pooled [CLS] output."""

    def __init__(self, vocab_size: int = 8000, hidden: int = 128, layers: int = 2, heads: int = 4,
                 intermediate: int = 512, max_positions: int = 512, type_vocab: int = 2) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab, hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(hidden, heads, intermediate) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        hidden = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
                  + self.token_type_embeddings(token_type_ids))
        hidden = self.embedding_norm(hidden)
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * -10000.0
        for layer in self.layers:
            hidden = layer(hidden, mask_bias)
        pooled = torch.tanh(self.pooler(hidden[:, 0]))
        return hidden, pooled


class MLP(nn.Module):
    """A tiny two-layer perceptron for tests."""

    def __init__(self, in_features: int = 16, hidden: int = 32, out_features: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _text_classifier(smoke: bool) -> ZooModel:
    vocab, dim, layers, heads, seq_default = (1000, 64, 2, 4, 32) if smoke else (30000, 256, 4, 8, 128)
    torch.manual_seed(0)
    model = TextClassifier(vocab, dim, 10, num_layers=layers, num_heads=heads).eval()

    def make(batch: int = 2, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, vocab, (batch, seq or seq_default), generator=_generator(seed)),)

    spec = ExportSpec(
        input_names=("input_ids",), output_names=("logits",),
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
    )
    return ZooModel("text_classifier", model, make(batch=2), spec, make,
                    "Embedding -> TransformerEncoder -> mean -> Linear (the seed's TextClassifier)")


def _image_classifier(smoke: bool) -> ZooModel:
    size = 64 if smoke else 224
    torch.manual_seed(0)
    model = ImageClassifier().eval()

    def make(batch: int = 2, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        side = seq or size
        return (torch.randn(batch, 3, side, side, generator=_generator(seed)),)

    # Channels are fixed by the conv weights: only batch and the spatial sizes are dynamic.
    spec = ExportSpec(
        input_names=("pixel_values",), output_names=("logits",),
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
    )
    return ZooModel("image_classifier", model, make(batch=2), spec, make,
                    "Conv2d(3, 64, 3) -> ReLU -> AdaptiveAvgPool2d(1) -> Linear(64, 10)")


def _bert_like(smoke: bool) -> ZooModel:
    cfg = dict(vocab_size=1000, hidden=64, layers=2, heads=4, intermediate=128) if smoke else {}
    torch.manual_seed(0)
    model = BertLike(**cfg).eval()
    vocab = model.word_embeddings.num_embeddings
    seq_default = 16 if smoke else 64

    def make(batch: int = 2, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        s = seq or seq_default
        g = _generator(seed)
        ids = torch.randint(0, vocab, (batch, s), generator=g)
        mask = torch.ones(batch, s, dtype=torch.int64)
        lengths = torch.randint(max(1, s // 2), s + 1, (batch,), generator=g)
        for i, n in enumerate(lengths.tolist()):
            mask[i, n:] = 0
        types = torch.zeros(batch, s, dtype=torch.int64)
        types[:, s // 2:] = 1
        return ids, mask, types

    axes = {"batch": 0, "seq": 1}
    spec = ExportSpec(
        input_names=("input_ids", "attention_mask", "token_type_ids"),
        output_names=("last_hidden_state", "pooler_output"),
        dynamic_axes={
            "input_ids": {axes["batch"]: "batch", axes["seq"]: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"},
            "pooler_output": {0: "batch"},
        },
    )
    return ZooModel("bert_like", model, make(batch=2), spec, make,
                    "A small BERT-style encoder with attention mask and token types")


def _mlp(smoke: bool) -> ZooModel:
    torch.manual_seed(0)
    model = MLP().eval()

    def make(batch: int = 2, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch, 16, generator=_generator(seed)),)

    spec = ExportSpec(input_names=("x",), output_names=("y",),
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return ZooModel("mlp", model, make(batch=2), spec, make, "Linear(16, 32) -> ReLU -> Linear(32, 4)")


_FACTORIES: dict[str, Callable[[bool], ZooModel]] = {
    "text_classifier": _text_classifier,
    "image_classifier": _image_classifier,
    "bert_like": _bert_like,
    "mlp": _mlp,
}


def names() -> list[str]:
    """The names ``get`` accepts."""
    return list(_FACTORIES)


def get(name: str, smoke: bool = False) -> ZooModel:
    """Build a zoo model by name; ``smoke=True`` gives a smaller size for tests and CI."""
    if name not in _FACTORIES:
        raise InvalidInputError(f"No zoo model named {name!r}. Choose one of {names()}.")
    return _FACTORIES[name](smoke)
