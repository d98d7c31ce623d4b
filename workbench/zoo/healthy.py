"""Small healthy demo models built in code (no downloads), each a ``ModelCase`` with an input maker
and a sensible export spec. ``workbench.zoo.get(name, smoke=...)`` builds them."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from workbench.core.case import ModelCase
from workbench.core.spec import ExportSpec

__all__ = ["FACTORIES", "MLP", "BertLike", "ImageClassifier", "TextClassifier", "WideMLP"]


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


class WideMLP(nn.Module):
    """Linear(1024, 4096) -> ReLU -> Linear(4096, 4096) -> ReLU -> Linear(4096, 10): 21 M weights (84 MB fp32),
    more than the L3 cache, so a batch-1 call is bound by reading the weights, not by arithmetic."""

    def __init__(self, in_features: int = 1024, hidden: int = 4096, out_features: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(batch: int | None) -> int:
    return 2 if batch is None else batch


def text_classifier(smoke: bool = False) -> ModelCase:
    vocab, dim, layers, heads, seq_default = (1000, 64, 2, 4, 32) if smoke else (30000, 256, 4, 8, 128)
    torch.manual_seed(0)
    model = TextClassifier(vocab, dim, 10, num_layers=layers, num_heads=heads).eval()

    def make(batch: int | None = None, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, vocab, (_batch(batch), seq or seq_default), generator=_generator(seed)),)

    spec = ExportSpec(
        input_names=("input_ids",), output_names=("logits",),
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
    )
    return ModelCase("text_classifier", model, make(), spec, input_factory=make,
                     description="Embedding -> TransformerEncoder -> mean -> Linear (the seed's TextClassifier)")


def image_classifier(smoke: bool = False) -> ModelCase:
    size = 64 if smoke else 224
    torch.manual_seed(0)
    model = ImageClassifier().eval()

    def make(batch: int | None = None, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        side = seq or size
        return (torch.randn(_batch(batch), 3, side, side, generator=_generator(seed)),)

    # Channels are fixed by the conv weights: only the batch is dynamic.
    spec = ExportSpec(
        input_names=("pixel_values",), output_names=("logits",),
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
    )
    return ModelCase("image_classifier", model, make(), spec, input_factory=make,
                     description="Conv2d(3, 64, 3) -> ReLU -> AdaptiveAvgPool2d(1) -> Linear(64, 10)")


def _bert_inputs(vocab: int, batch: int, seq: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Token ids, a padding mask (each row keeps at least half the sequence) and two token types."""
    g = _generator(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    lengths = torch.randint(max(1, seq // 2), seq + 1, (batch,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        mask[i, n:] = 0
    types = torch.zeros(batch, seq, dtype=torch.int64)
    types[:, seq // 2:] = 1
    return ids, mask, types


def bert_like(smoke: bool = False) -> ModelCase:
    cfg = dict(vocab_size=1000, hidden=64, layers=2, heads=4, intermediate=128) if smoke else {}
    torch.manual_seed(0)
    model = BertLike(**cfg).eval()
    vocab = model.word_embeddings.num_embeddings
    seq_default = 16 if smoke else 64

    def make(batch: int | None = None, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return _bert_inputs(vocab, _batch(batch), seq or seq_default, seed)

    token_axes = {0: "batch", 1: "seq"}
    spec = ExportSpec(
        input_names=("input_ids", "attention_mask", "token_type_ids"),
        output_names=("last_hidden_state", "pooler_output"),
        dynamic_axes={"input_ids": dict(token_axes), "attention_mask": dict(token_axes),
                      "token_type_ids": dict(token_axes), "last_hidden_state": dict(token_axes),
                      "pooler_output": {0: "batch"}},
    )
    return ModelCase("bert_like", model, make(), spec, input_factory=make,
                     description="A small BERT-style encoder with attention mask and token types")


def mlp(smoke: bool = False) -> ModelCase:
    torch.manual_seed(0)
    model = MLP().eval()

    def make(batch: int | None = None, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return (torch.randn(_batch(batch), 16, generator=_generator(seed)),)

    spec = ExportSpec(input_names=("x",), output_names=("y",), dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return ModelCase("mlp", model, make(), spec, input_factory=make,
                     description="Linear(16, 32) -> ReLU -> Linear(32, 4)")


def weight_bound_mlp(smoke: bool = False) -> ModelCase:
    """The serving demo: 84 MB of fp32 weights, more than the L3 cache, so a batch-1 call streams every weight
    for one row. Measured on the project's 2-core CPU with ONNX Runtime 1.32 (1 intra-op thread, 2026-11): batch 1
    2.4 ms, batch 16 6.8 ms (2.8x, not the ~1.2x one might hope: at 16 rows the GEMMs are compute-bound here), so a
    row costs 5.7x less in a batch of 16 and a server that batches wins. ``smoke``: 64 -> 256 -> 10."""
    in_features, hidden = (64, 256) if smoke else (1024, 4096)
    torch.manual_seed(0)
    model = WideMLP(in_features, hidden).eval()

    def make(batch: int | None = None, seq: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        return (torch.randn(_batch(batch), in_features, generator=_generator(seed)),)

    spec = ExportSpec(input_names=("x",), output_names=("y",), dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return ModelCase("weight_bound_mlp", model, make(), spec, input_factory=make,
                     description=f"Linear({in_features}, {hidden}) -> ReLU -> Linear({hidden}, {hidden}) -> ReLU -> "
                                 f"Linear({hidden}, 10): batch-1 calls bound by reading the weights")


#: name -> factory(smoke) of every healthy model.
FACTORIES: dict[str, Callable[[bool], ModelCase]] = {
    "text_classifier": text_classifier,
    "image_classifier": image_classifier,
    "bert_like": bert_like,
    "mlp": mlp,
    "weight_bound_mlp": weight_bound_mlp,
}
