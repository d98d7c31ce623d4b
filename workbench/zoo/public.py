"""Public ``transformers`` architectures built from tiny configs (random weights, no downloads), each a
``ModelCase`` exported the way a user would naturally write it (dynamo, dynamic batch/seq).

    >>> from workbench.zoo import public
    >>> public.names()                    # every architecture; public.failing() / public.healthy() split them
    >>> case = public.get("gpt2")         # PublicCase: the code the doctor must name, whether a retry passes
    >>> model_case = case.build()         # ModelCase (imports transformers)
    >>> wb.zoo.get("public/gpt2")         # the same ModelCase through the zoo's accessor

``transformers`` is imported only when a case is built; without it ``build`` raises
``InvalidInputError`` saying to ``pip install onnx-workbench[test]`` (or ``transformers``). The
failing cases are what torch 2.13 / transformers 5.24 give a plain export: decoders return a cache
object with ``use_cache`` left on (OUT001), ``output_names`` miscounts a ``ModelOutput`` (OUT002),
Swin reshapes a non-contiguous tensor (EXP002), Longformer turns a mask into a Python number
(DATA003), Funnel pins the sequence length (DYN004), Nystromformer pins it by Python arithmetic
(DYN007); T5 returns a cache and, without it, reshapes a non-contiguous tensor (OUT001, then
EXP002). ``retry_passes`` says whether one of the doctor's verified retries passes (False: none
does; the finding then points at the line to change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from workbench.core.case import ModelCase
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError

__all__ = ["CASES", "PublicCase", "failing", "get", "healthy", "names"]

_L = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
_T = {**_L, "vocab_size": 99, "max_position_embeddings": 64}
_S2S = {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37, "vocab_size": 99}
_IMG = {"image_size": 32, "patch_size": 8, **_L}


@dataclass(frozen=True)
class PublicCase:
    """One architecture: config and model class names in ``transformers``, the input kind, the config,
    the spec's output names, the code the doctor must name (None: healthy) and whether a retry passes."""

    name: str
    config_class: str
    model_class: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    output_names: tuple[str, ...] = ()
    code: str | None = None
    retry_passes: bool | None = None
    description: str = ""

    def build(self) -> ModelCase:
        """The model (eval mode, seed 0), its example inputs and the spec a user would write."""
        transformers = _transformers()
        with torch.random.fork_rng():  # seed 0 for the weights and inputs, the caller's RNG left as it was
            torch.manual_seed(0)
            config = getattr(transformers, self.config_class)(**self.config)
            model = getattr(transformers, self.model_class)(config).eval()
            inputs, names, axes = _inputs(self.kind, config)
        spec = ExportSpec(input_names=names, output_names=self.output_names, dynamic_axes=axes, opset=18)
        return ModelCase(f"public/{self.name}", model, inputs, spec, description=self.description)

    @property
    def factory(self) -> Callable[[], ModelCase]:
        return self.build


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise InvalidInputError(
            "The public zoo builds models with the transformers library, which is not installed. "
            "Install it with: pip install 'onnx-workbench[test]' (or pip install transformers)."
        ) from exc
    return transformers


def _inputs(kind: str, config: Any) -> tuple[tuple[torch.Tensor, ...], tuple[str, ...], dict[str, dict[int, str]]]:
    g = torch.Generator().manual_seed(0)
    text = {0: "batch", 1: "seq"}
    if kind == "ids":
        return (torch.randint(3, 90, (2, 8), generator=g),), ("input_ids",), {"input_ids": text}
    if kind == "encdec":
        ids = torch.randint(3, 90, (2, 8), generator=g)
        return ((ids, torch.ones_like(ids), torch.randint(3, 90, (2, 6), generator=g)),
                ("input_ids", "attention_mask", "decoder_input_ids"),
                {"input_ids": text, "attention_mask": text, "decoder_input_ids": {0: "batch", 1: "dec_seq"}})
    if kind == "audio":
        frames = 2 * config.max_source_positions
        features = torch.randn(2, config.num_mel_bins, frames, generator=g)
        return ((features, torch.ones(2, frames, dtype=torch.long), torch.randint(3, 90, (2, 6), generator=g)),
                ("input_features", "attention_mask", "decoder_input_ids"),
                {"input_features": {0: "batch"}, "attention_mask": {0: "batch"},
                 "decoder_input_ids": {0: "batch", 1: "dec_seq"}})
    return (torch.randn(2, 3, 32, 32, generator=g),), ("pixel_values",), {"pixel_values": {0: "batch"}}


def _fail(name: str, cfg: str, model: str, kind: str, config: dict[str, Any], code: str, passes: bool | None,
          description: str, output_names: tuple[str, ...] = ()) -> PublicCase:
    return PublicCase(name, cfg, model, kind, config, output_names, code, passes, description)


def _ok(name: str, cfg: str, model: str, kind: str, config: dict[str, Any]) -> PublicCase:
    return PublicCase(name, cfg, model, kind, config, description="exports cleanly with dynamic axes")


_KV = {"num_key_value_heads": 2, **_T}
_CAUSAL = ("logits",)

CASES: tuple[PublicCase, ...] = (
    _fail("gpt2", "GPT2Config", "GPT2LMHeadModel", "ids",
          {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 99, "n_positions": 64, "bos_token_id": 1,
           "eos_token_id": 1}, "OUT001", True, "use_cache left on: returns a DynamicCache", _CAUSAL),
    _fail("llama", "LlamaConfig", "LlamaForCausalLM", "ids", _KV, "OUT001", True,
          "use_cache left on: returns a DynamicCache", _CAUSAL),
    _fail("mistral", "MistralConfig", "MistralForCausalLM", "ids", {**_KV, "sliding_window": 4}, "OUT001", True,
          "use_cache left on (sliding-window attention)", _CAUSAL),
    _fail("falcon", "FalconConfig", "FalconForCausalLM", "ids",
          {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 99}, "OUT001", True,
          "use_cache left on: returns a DynamicCache", _CAUSAL),
    _fail("bloom", "BloomConfig", "BloomForCausalLM", "ids",
          {"hidden_size": 32, "n_layer": 2, "n_head": 4, "vocab_size": 99}, "OUT001", True,
          "use_cache left on (ALiBi attention)", _CAUSAL),
    _fail("t5", "T5Config", "T5ForConditionalGeneration", "encdec",
          {"d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 2, "num_heads": 4, "vocab_size": 99,
           "decoder_start_token_id": 0}, "OUT001", True, "returns an EncoderDecoderCache", _CAUSAL),
    _fail("bart", "BartConfig", "BartForConditionalGeneration", "encdec", {**_S2S, "max_position_embeddings": 64},
          "OUT001", True, "returns an EncoderDecoderCache", _CAUSAL),
    _fail("whisper", "WhisperConfig", "WhisperModel", "audio",
          {**_S2S, "num_mel_bins": 8, "max_source_positions": 16, "max_target_positions": 32, "pad_token_id": 1,
           "bos_token_id": 2, "eos_token_id": 2, "decoder_start_token_id": 2}, "OUT001", True,
          "speech encoder-decoder returning an EncoderDecoderCache", ("last_hidden_state",)),
    _fail("bert_output_names", "BertConfig", "BertModel", "ids", _T, "OUT002", True,
          "output_names=('last_hidden_state',) for a model returning two tensors", ("last_hidden_state",)),
    _fail("swin", "SwinConfig", "SwinModel", "pixels",
          {"image_size": 32, "patch_size": 4, "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2],
           "window_size": 4}, "EXP002", True, "windowed attention reshapes a non-contiguous tensor"),
    _fail("longformer", "LongformerConfig", "LongformerModel", "ids", {"attention_window": 4, **_T}, "DATA003",
          False, ".item() on the global-attention mask decides a branch"),
    _fail("funnel", "FunnelConfig", "FunnelModel", "ids",
          {"d_model": 32, "n_head": 4, "d_head": 8, "d_inner": 37, "block_sizes": [1, 1], "num_decoder_layers": 1,
           "vocab_size": 99}, "DYN004", True, "relative position embeddings pin the sequence length"),
    _fail("nystromformer", "NystromformerConfig", "NystromformerModel", "ids",
          {"num_landmarks": 4, "segment_means_seq_len": 8, **_T}, "DYN007", False,
          "landmark count computed from the sequence length in Python (static export fails too)"),
    _ok("bert", "BertConfig", "BertModel", "ids", _T),
    _ok("distilbert", "DistilBertConfig", "DistilBertModel", "ids",
        {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37, "vocab_size": 99, "max_position_embeddings": 64}),
    _ok("albert", "AlbertConfig", "AlbertModel", "ids", {"embedding_size": 16, **_T}),
    _ok("roberta", "RobertaConfig", "RobertaModel", "ids", _T),
    _ok("mpnet", "MPNetConfig", "MPNetModel", "ids", _T),
    _ok("clip_text", "CLIPTextConfig", "CLIPTextModel", "ids", {**_T, "bos_token_id": 1, "eos_token_id": 2}),
    _ok("vit", "ViTConfig", "ViTModel", "pixels", _IMG),
    _ok("deit", "DeiTConfig", "DeiTModel", "pixels", _IMG),
    _ok("beit", "BeitConfig", "BeitModel", "pixels", _IMG),
    _ok("clip_vision", "CLIPVisionConfig", "CLIPVisionModel", "pixels", _IMG),
    _ok("convnext", "ConvNextConfig", "ConvNextModel", "pixels", {"hidden_sizes": [8, 16], "depths": [1, 1],
                                                                  "num_stages": 2}),
    _ok("resnet", "ResNetConfig", "ResNetModel", "pixels", {"embedding_size": 8, "hidden_sizes": [8, 16],
                                                            "depths": [1, 1]}),
)


def names() -> list[str]:
    """Every public case's name, failing ones first."""
    return [c.name for c in CASES]


def failing() -> list[PublicCase]:
    """The cases a plain dynamo export with dynamic axes fails on (the doctor's real-failure gallery)."""
    return [c for c in CASES if c.code is not None]


def healthy() -> list[PublicCase]:
    """The cases that export, check, compare and probe cleanly."""
    return [c for c in CASES if c.code is None]


def get(name: str) -> PublicCase:
    """The public case named ``name`` (``public/`` prefix allowed)."""
    name = name.removeprefix("public/")
    for case in CASES:
        if case.name == name:
            return case
    raise InvalidInputError(f"No public zoo case named {name!r}. Choose one of {names()}.")
