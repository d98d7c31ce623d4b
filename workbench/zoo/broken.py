"""The broken zoo: one small model per export problem, the doctor's gallery.

    >>> from workbench.zoo import broken
    >>> case = broken.get("size_one_batch")      # BrokenCase: the code the doctor must name, and where
    >>> model_case = case.build()                # ModelCase: model, example_inputs, spec, config, tolerance

``workbench.doctor.gallery.diagnose_case(case)`` diagnoses one, ``gallery.check(case, diagnosis)`` says
what the diagnosis got wrong. Each factory is also a CLI target, e.g.
``onnx-workbench doctor workbench.zoo.broken:size_one_batch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import onnxruntime as ort
import torch
from torch import nn

from workbench.core.case import ModelCase
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError
from workbench.zoo import _broken_models as bm

__all__ = ["CASES", "BrokenCase", "get", "names", "unavailable_provider_name"]


@dataclass(frozen=True)
class BrokenCase:
    """A broken model (``build()`` makes its ``ModelCase``), the code the doctor must name, where the
    evidence must point, and whether the automatic retry is expected to pass (None: the code has
    no automatic retry)."""

    name: str
    category: str
    code: str
    description: str
    build: Callable[[], ModelCase] = field(repr=False)
    where: dict[str, Any] = field(default_factory=dict)
    retry_passes: bool | None = True


def _spec(names: tuple[str, ...], axes: dict[str, dict[int, str]] | None = None, *, exporter: str = "torchscript",
          opset: int = 17) -> ExportSpec:
    return ExportSpec(input_names=names, output_names=("y",), dynamic_axes=axes or {},
                      exporter=exporter, opset=opset)  # type: ignore[arg-type]


def _seed(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


_BATCH = {"x": {0: "batch"}, "y": {0: "batch"}}
_IDS = {"input_ids": {0: "batch", 1: "seq"}, "y": {0: "batch"}}


def _case(name: str, model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], spec: ExportSpec, *,
          config: SessionConfig | None = None) -> ModelCase:
    inputs = example if isinstance(example, tuple) else (example,)
    return ModelCase(name, model, inputs, spec, config=config)


def size_one_batch() -> ModelCase:
    g = _seed()
    return _case("size_one_batch", bm.Encoder().eval(), torch.randint(0, 50, (1, 5), generator=g),
                 _spec(("input_ids",), _IDS, exporter="dynamo", opset=18))


def baked_reshape() -> ModelCase:
    g = _seed()
    return _case("baked_reshape", bm.Encoder().eval(), torch.randint(0, 50, (2, 5), generator=g),
                 _spec(("input_ids",), _IDS))


def dynamic_axes_typo() -> ModelCase:
    g = _seed()
    return _case("dynamic_axes_typo", bm.TinyMLP().eval(), torch.randn(2, 8, generator=g),
                 _spec(("x",), {"input": {0: "batch"}}))


def channels_dynamic() -> ModelCase:
    g = _seed()
    return _case("channels_dynamic", bm.TinyConv().eval(), torch.randn(2, 3, 8, 8, generator=g),
                 _spec(("pixels",), {"pixels": {0: "batch", 1: "channels"}}))


def shape_branch() -> ModelCase:
    g = _seed()
    return _case("shape_branch", bm.Gated(bm.SizeGate()).eval(), torch.randn(4, 8, generator=g),
                 _spec(("x",), _BATCH, exporter="dynamo", opset=18))


def _value_gated(name: str, exporter: str) -> ModelCase:
    g = _seed()
    model = bm.Gated(bm.ValueGate()).eval()
    with torch.no_grad():  # a positive mean after fc1 for the example, so the negated example flips the branch
        model.fc1.bias.zero_()
        model.fc1.weight.copy_(torch.eye(8))
    x = torch.rand(3, 8, generator=g) + 0.5
    return _case(name, model, x,
                 _spec(("x",), _BATCH, exporter=exporter, opset=17 if exporter == "torchscript" else 18))


def value_branch_traced() -> ModelCase:
    return _value_gated("value_branch_traced", "torchscript")


def value_branch_export() -> ModelCase:
    return _value_gated("value_branch_export", "dynamo")


def item_slice() -> ModelCase:
    g = _seed()
    return _case("item_slice", bm.Cropper().eval(), torch.randn(3, 8, generator=g), _spec(("x",)))


def unsupported_op() -> ModelCase:
    g = _seed()
    return _case("unsupported_op", bm.Wrap(bm.Histogram()).eval(), torch.randn(3, 8, generator=g), _spec(("x",)))


def unsupported_everywhere() -> ModelCase:
    g = _seed()
    return _case("unsupported_everywhere", bm.Wrap(bm.CumProd()).eval(), torch.randn(3, 8, generator=g),
                 _spec(("x",)))


def opset_too_old() -> ModelCase:
    g = _seed()
    return _case("opset_too_old", bm.Wrap(bm.UpperMask()).eval(), torch.randn(8, 8, generator=g),
                 _spec(("x",), opset=13))


def autograd_function() -> ModelCase:
    g = _seed()
    return _case("autograd_function", bm.Wrap(bm.Apply(bm.NumpyClamp)).eval(), torch.randn(3, 8, generator=g),
                 _spec(("x",), _BATCH, exporter="dynamo", opset=18))


def custom_domain_op() -> ModelCase:
    g = _seed()
    return _case("custom_domain_op", bm.Wrap(bm.Apply(bm.ScaleByTwo)).eval(), torch.randn(3, 8, generator=g),
                 _spec(("x",)))


def training_mode() -> ModelCase:
    g = _seed()
    return _case("training_mode", bm.TinyMLP().train(), torch.randn(2, 8, generator=g), _spec(("x",)))


def fp16_tolerance() -> ModelCase:
    g = _seed()
    return _case("fp16_tolerance", bm.HalfSquare().eval(), torch.randn(4, 16, generator=g) * 3, _spec(("x",)))


def ort_gelu_approximation() -> ModelCase:
    g = _seed()
    model = bm.TwoBlocks(nn.ReLU(), nn.GELU(), dim=32).eval()
    config = SessionConfig(config_entries={"optimization.enable_gelu_approximation": "1"})
    return _case("ort_gelu_approximation", model, torch.randn(8, 32, generator=g) * 4, _spec(("x",)), config=config)


def transformer_fastpath() -> ModelCase:
    g = _seed()
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    return _case("transformer_fastpath", bm.PaddedEncoder().eval(), (torch.randn(2, 6, 16, generator=g), padding),
                 _spec(("x", "padding")))


def symbolic_drift() -> ModelCase:
    g = _seed()
    model = bm.TwoBlocks(nn.GELU(), bm.Apply(bm.TanhGelu)).eval()
    return _case("symbolic_drift", model, torch.randn(4, 16, generator=g) * 3, _spec(("x",)))


def misspelled_provider() -> ModelCase:
    g = _seed()
    config = SessionConfig(providers=("CudaExecutionProvider", "CPUExecutionProvider"))
    return _case("misspelled_provider", bm.TinyMLP().eval(), torch.randn(2, 8, generator=g), _spec(("x",)),
                 config=config)


def unavailable_provider_name() -> str | None:
    """A provider ONNX Runtime knows but this build lacks (CUDA first), or None."""
    missing = [p for p in ort.get_all_providers() if p not in ort.get_available_providers()]
    return next((p for p in missing if p == "CUDAExecutionProvider"), missing[0] if missing else None)


def unavailable_provider() -> ModelCase:
    g = _seed()
    name = unavailable_provider_name()
    if name is None:  # pragma: no cover - every build lacks some provider
        raise InvalidInputError("Every provider ONNX Runtime knows is available here; this case cannot break.")
    config = SessionConfig(providers=(name, "CPUExecutionProvider"))
    return _case("unavailable_provider", bm.TinyMLP().eval(), torch.randn(2, 8, generator=g), _spec(("x",)),
                 config=config)


def device_mismatch() -> ModelCase:
    _seed()
    return _case("device_mismatch", bm.TinyMLP().eval(), torch.empty(2, 8, device="meta"), _spec(("x",)))


CASES: tuple[BrokenCase, ...] = (
    BrokenCase("size_one_batch", "dynamic shapes", "DYN001", "dynamo export from a batch-1 example",
               size_one_batch, {"input": "input_ids", "symbol": "batch", "example_size": 1}),
    BrokenCase("baked_reshape", "dynamic shapes", "DYN002", "TorchScript export of nn.MultiheadAttention",
               baked_reshape, {"module": "attn", "op_type": "Reshape"}),
    BrokenCase("dynamic_axes_typo", "dynamic shapes", "DYN003", "dynamic_axes key 'input' for the input 'x'",
               dynamic_axes_typo, {"key": "input", "suggestion": "x"}),
    BrokenCase("channels_dynamic", "dynamic shapes", "DYN004", "Conv input channels declared dynamic",
               channels_dynamic, {"symbol": "channels", "axis": 1}),
    BrokenCase("shape_branch", "dynamic shapes", "DYN005", "if x.shape[0] > 2 in a submodule (dynamo)",
               shape_branch, {"module": "gate"}, None),
    BrokenCase("value_branch_traced", "data-dependent", "DATA001", "if x.mean() > 0, TorchScript exporter",
               value_branch_traced, {"module": "gate", "source": "if x.mean() > 0"}, False),
    BrokenCase("value_branch_export", "data-dependent", "DATA002", "if x.mean() > 0, dynamo exporter",
               value_branch_export, {"module": "gate", "source": "if x.mean() > 0"}, False),
    BrokenCase("item_slice", "data-dependent", "DATA003", ".item() as a slice bound, TorchScript exporter",
               item_slice, {"module": "crop", "escape": "item"}),
    BrokenCase("unsupported_op", "operators", "OP001", "torch.histc with the TorchScript exporter",
               unsupported_op, {"op": "aten::histc", "module": "inner"}),
    BrokenCase("unsupported_everywhere", "operators", "OP001", "torch.cumprod: no translation in either exporter",
               unsupported_everywhere, {"op": "aten::cumprod", "module": "inner"}, False),
    BrokenCase("opset_too_old", "operators", "OP002", "torch.triu at opset 13",
               opset_too_old, {"op": "aten::triu", "required_opset": 14, "module": "inner"}),
    BrokenCase("autograd_function", "operators", "OP003", "autograd Function with numpy inside, dynamo exporter",
               autograd_function, {"autograd_function": "NumpyClamp", "module": "inner"}),
    BrokenCase("custom_domain_op", "operators", "OP004", "symbolic emitting wbgallery::Scale",
               custom_domain_op, {"op": "wbgallery::Scale", "module": "inner"}),
    BrokenCase("training_mode", "numerics", "NUM001", "exported in training mode (dropout)",
               training_mode, {"module": "drop"}),
    BrokenCase("fp16_tolerance", "numerics", "NUM002", "float16 compute compared at fp32 tolerance",
               fp16_tolerance, {"passes_at": "fp16"}),
    BrokenCase("ort_gelu_approximation", "numerics", "NUM003", "ONNX Runtime's opt-in GELU approximation",
               ort_gelu_approximation, {"optimizer": "GeluApproximation", "module": "b2.act", "level": "extended"}),
    BrokenCase("transformer_fastpath", "numerics", "NUM005", "padded TransformerEncoder: fast path vs graph",
               transformer_fastpath, {"module": "enc", "module_type": "TransformerEncoder"}),
    BrokenCase("symbolic_drift", "divergence", "NUM004", "a symbolic computing tanh-GELU for exact GELU",
               symbolic_drift, {"module": "b2.act", "node": "/b2/act/"}),
    BrokenCase("misspelled_provider", "providers", "EP001", "'CudaExecutionProvider'",
               misspelled_provider, {"provider": "CudaExecutionProvider", "suggestion": "CUDAExecutionProvider"}),
    BrokenCase("unavailable_provider", "providers", "EP002", "a provider this build lacks",
               unavailable_provider, {"provider": unavailable_provider_name() or ""}),
    BrokenCase("device_mismatch", "device", "DEV001", "model on CPU, inputs on 'meta'",
               device_mismatch, {"inputs_elsewhere": ["x"]}),
)


def names() -> list[str]:
    """The names of the broken cases, in gallery order."""
    return [c.name for c in CASES]


def get(name: str) -> BrokenCase:
    """The broken case named ``name``."""
    for case in CASES:
        if case.name == name:
            return case
    raise InvalidInputError(f"No broken zoo case named {name!r}. Choose one of {names()}.")
