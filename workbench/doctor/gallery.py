"""A gallery of broken models, one export problem each, for tests, notebooks and the CLI.

    >>> from workbench.doctor import gallery
    >>> case = gallery.get("size_one_batch")
    >>> broken = case.build()           # BrokenModel: model, example_inputs, spec, config, tolerance
    >>> d = broken.diagnose()
    >>> case.check(d)                   # [] when the doctor named the code and the place

Each case factory is also a CLI target: ``onnx-workbench doctor workbench.doctor.gallery:size_one_batch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import onnxruntime as ort
import torch
from torch import nn

from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.doctor import _gallery_models as gm
from workbench.doctor.findings import Diagnosis
from workbench.errors import InvalidInputError


@dataclass
class BrokenModel:
    """A model with its example inputs and the spec, session config and tolerance that go with it."""

    name: str
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    spec: ExportSpec | None = None
    config: SessionConfig | None = None
    tolerance: str = "fp32"

    def diagnose(self, **kwargs: Any) -> Diagnosis:
        from workbench.doctor.engine import diagnose

        return diagnose(self.model, self.example_inputs, self.spec, config=self.config, tolerance=self.tolerance,
                        name=self.name, **kwargs)


@dataclass(frozen=True)
class GalleryCase:
    """A broken model, the code the doctor must name, where the evidence must point, and whether the
    automatic retry is expected to pass (None: the code has no automatic retry)."""

    name: str
    category: str
    code: str
    description: str
    build: Callable[[], BrokenModel] = field(repr=False)
    where: dict[str, Any] = field(default_factory=dict)
    retry_passes: bool | None = True

    def check(self, diagnosis: Diagnosis) -> list[str]:
        """What the diagnosis gets wrong for this case (empty when it is right)."""
        finding = diagnosis.finding(self.code)
        if finding is None:
            return [f"no {self.code} finding; got {diagnosis.codes}"]
        problems = []
        if finding.severity == "error" and diagnosis.ok:
            problems.append("the diagnosis is ok despite an error finding")
        for key, want in self.where.items():
            got = finding.evidence.get(key)
            if not (got == want or (isinstance(want, str) and want in str(got))):
                problems.append(f"evidence[{key!r}] is {got!r}, expected {want!r}")
        return problems


def _spec(names: tuple[str, ...], axes: dict[str, dict[int, str]] | None = None, *, exporter: str = "torchscript",
          opset: int = 17, outputs: tuple[str, ...] = ("y",)) -> ExportSpec:
    return ExportSpec(input_names=names, output_names=outputs, dynamic_axes=axes or {}, exporter=exporter,  # type: ignore[arg-type]
                      opset=opset)


def _seed(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


_BATCH = {"x": {0: "batch"}, "y": {0: "batch"}}


_IDS = {"input_ids": {0: "batch", 1: "seq"}, "y": {0: "batch"}}


def size_one_batch() -> BrokenModel:
    g = _seed()
    return BrokenModel("size_one_batch", gm.Encoder().eval(), (torch.randint(0, 50, (1, 5), generator=g),),
                       _spec(("input_ids",), _IDS, exporter="dynamo", opset=18))


def baked_reshape() -> BrokenModel:
    g = _seed()
    return BrokenModel("baked_reshape", gm.Encoder().eval(), (torch.randint(0, 50, (2, 5), generator=g),),
                       _spec(("input_ids",), _IDS))


def dynamic_axes_typo() -> BrokenModel:
    g = _seed()
    return BrokenModel("dynamic_axes_typo", gm.TinyMLP().eval(), (torch.randn(2, 8, generator=g),),
                       _spec(("x",), {"input": {0: "batch"}}))


def channels_dynamic() -> BrokenModel:
    g = _seed()
    spec = _spec(("pixels",), {"pixels": {0: "batch", 1: "channels"}})
    return BrokenModel("channels_dynamic", gm.TinyConv().eval(), (torch.randn(2, 3, 8, 8, generator=g),), spec)


def shape_branch() -> BrokenModel:
    g = _seed()
    return BrokenModel("shape_branch", gm.Gated(gm.SizeGate()).eval(), (torch.randn(4, 8, generator=g),),
                       _spec(("x",), _BATCH, exporter="dynamo", opset=18))


def _value_gated(exporter: str) -> BrokenModel:
    g = _seed()
    model = gm.Gated(gm.ValueGate()).eval()
    with torch.no_grad():  # a positive mean after fc1 for the example, so the negated example flips the branch
        model.fc1.bias.zero_()
        model.fc1.weight.copy_(torch.eye(8))
    x = torch.rand(3, 8, generator=g) + 0.5
    return BrokenModel(f"value_branch_{exporter}", model, (x,),
                       _spec(("x",), _BATCH, exporter=exporter, opset=17 if exporter == "torchscript" else 18))


def value_branch_traced() -> BrokenModel:
    return _value_gated("torchscript")


def value_branch_export() -> BrokenModel:
    return _value_gated("dynamo")


def item_slice() -> BrokenModel:
    g = _seed()
    return BrokenModel("item_slice", gm.Cropper().eval(), (torch.randn(3, 8, generator=g),), _spec(("x",)))


def unsupported_op() -> BrokenModel:
    g = _seed()
    return BrokenModel("unsupported_op", gm.Wrap(gm.Histogram()).eval(), (torch.randn(3, 8, generator=g),),
                       _spec(("x",)))


def unsupported_everywhere() -> BrokenModel:
    g = _seed()
    return BrokenModel("unsupported_everywhere", gm.Wrap(gm.CumProd()).eval(), (torch.randn(3, 8, generator=g),),
                       _spec(("x",)))


def opset_too_old() -> BrokenModel:
    g = _seed()
    return BrokenModel("opset_too_old", gm.Wrap(gm.UpperMask()).eval(), (torch.randn(8, 8, generator=g),),
                       _spec(("x",), opset=13))


def autograd_function() -> BrokenModel:
    g = _seed()
    return BrokenModel("autograd_function", gm.Wrap(gm.Apply(gm.NumpyClamp)).eval(),
                       (torch.randn(3, 8, generator=g),), _spec(("x",), _BATCH, exporter="dynamo", opset=18))


def custom_domain_op() -> BrokenModel:
    g = _seed()
    return BrokenModel("custom_domain_op", gm.Wrap(gm.Apply(gm.ScaleByTwo)).eval(), (torch.randn(3, 8, generator=g),),
                       _spec(("x",)))


def training_mode() -> BrokenModel:
    g = _seed()
    return BrokenModel("training_mode", gm.TinyMLP().train(), (torch.randn(2, 8, generator=g),), _spec(("x",)))


def fp16_tolerance() -> BrokenModel:
    g = _seed()
    return BrokenModel("fp16_tolerance", gm.HalfSquare().eval(), (torch.randn(4, 16, generator=g) * 3,), _spec(("x",)))


def ort_gelu_approximation() -> BrokenModel:
    g = _seed()
    model = gm.TwoBlocks(nn.ReLU(), nn.GELU(), dim=32).eval()
    config = SessionConfig(config_entries={"optimization.enable_gelu_approximation": "1"})
    return BrokenModel("ort_gelu_approximation", model, (torch.randn(8, 32, generator=g) * 4,),
                       _spec(("x",)), config)


def transformer_fastpath() -> BrokenModel:
    g = _seed()
    padding = torch.zeros(2, 6, dtype=torch.bool)
    padding[1, 4:] = True
    return BrokenModel("transformer_fastpath", gm.PaddedEncoder().eval(), (torch.randn(2, 6, 16, generator=g), padding),
                       _spec(("x", "padding")))


def symbolic_drift() -> BrokenModel:
    g = _seed()
    model = gm.TwoBlocks(nn.GELU(), gm.Apply(gm.TanhGelu)).eval()
    return BrokenModel("symbolic_drift", model, (torch.randn(4, 16, generator=g) * 3,), _spec(("x",)))


def misspelled_provider() -> BrokenModel:
    g = _seed()
    config = SessionConfig(providers=("CudaExecutionProvider", "CPUExecutionProvider"))
    return BrokenModel("misspelled_provider", gm.TinyMLP().eval(), (torch.randn(2, 8, generator=g),),
                       _spec(("x",)), config)


def unavailable_provider_name() -> str | None:
    """A provider ONNX Runtime knows but this build lacks (CUDA first), or None."""
    missing = [p for p in ort.get_all_providers() if p not in ort.get_available_providers()]
    return next((p for p in missing if p == "CUDAExecutionProvider"), missing[0] if missing else None)


def unavailable_provider() -> BrokenModel:
    g = _seed()
    name = unavailable_provider_name()
    if name is None:  # pragma: no cover - every build lacks some provider
        raise InvalidInputError("Every provider ONNX Runtime knows is available here; this case cannot break.")
    config = SessionConfig(providers=(name, "CPUExecutionProvider"))
    return BrokenModel("unavailable_provider", gm.TinyMLP().eval(), (torch.randn(2, 8, generator=g),),
                       _spec(("x",)), config)


def device_mismatch() -> BrokenModel:
    _seed()
    return BrokenModel("device_mismatch", gm.TinyMLP().eval(), (torch.empty(2, 8, device="meta"),), _spec(("x",)))


CASES: tuple[GalleryCase, ...] = (
    GalleryCase("size_one_batch", "dynamic shapes", "DYN001", "dynamo export from a batch-1 example",
                size_one_batch, {"input": "input_ids", "symbol": "batch", "example_size": 1}),
    GalleryCase("baked_reshape", "dynamic shapes", "DYN002", "TorchScript export of nn.MultiheadAttention",
                baked_reshape, {"module": "attn", "op_type": "Reshape"}),
    GalleryCase("dynamic_axes_typo", "dynamic shapes", "DYN003", "dynamic_axes key 'input' for the input 'x'",
                dynamic_axes_typo, {"key": "input", "suggestion": "x"}),
    GalleryCase("channels_dynamic", "dynamic shapes", "DYN004", "Conv input channels declared dynamic",
                channels_dynamic, {"symbol": "channels", "axis": 1}),
    GalleryCase("shape_branch", "dynamic shapes", "DYN005", "if x.shape[0] > 2 in a submodule (dynamo)",
                shape_branch, {"module": "gate"}, None),
    GalleryCase("value_branch_traced", "data-dependent", "DATA001", "if x.mean() > 0, TorchScript exporter",
                value_branch_traced, {"module": "gate", "source": "if x.mean() > 0"}, False),
    GalleryCase("value_branch_export", "data-dependent", "DATA002", "if x.mean() > 0, dynamo exporter",
                value_branch_export, {"module": "gate", "source": "if x.mean() > 0"}, False),
    GalleryCase("item_slice", "data-dependent", "DATA003", ".item() as a slice bound, TorchScript exporter",
                item_slice, {"module": "crop", "escape": "item"}),
    GalleryCase("unsupported_op", "operators", "OP001", "torch.histc with the TorchScript exporter",
                unsupported_op, {"op": "aten::histc", "module": "inner"}),
    GalleryCase("unsupported_everywhere", "operators", "OP001", "torch.cumprod: no translation in either exporter",
                unsupported_everywhere, {"op": "aten::cumprod", "module": "inner"}, False),
    GalleryCase("opset_too_old", "operators", "OP002", "torch.triu at opset 13",
                opset_too_old, {"op": "aten::triu", "required_opset": 14, "module": "inner"}),
    GalleryCase("autograd_function", "operators", "OP003", "autograd Function with numpy inside, dynamo exporter",
                autograd_function, {"autograd_function": "NumpyClamp", "module": "inner"}),
    GalleryCase("custom_domain_op", "operators", "OP004", "symbolic emitting wbgallery::Scale",
                custom_domain_op, {"op": "wbgallery::Scale", "module": "inner"}),
    GalleryCase("training_mode", "numerics", "NUM001", "exported in training mode (dropout)",
                training_mode, {"module": "drop"}),
    GalleryCase("fp16_tolerance", "numerics", "NUM002", "float16 compute compared at fp32 tolerance",
                fp16_tolerance, {"passes_at": "fp16"}),
    GalleryCase("ort_gelu_approximation", "numerics", "NUM003", "ONNX Runtime's opt-in GELU approximation",
                ort_gelu_approximation, {"optimizer": "GeluApproximation", "module": "b2.act", "level": "extended"}),
    GalleryCase("transformer_fastpath", "numerics", "NUM005", "padded TransformerEncoder: fast path vs graph",
                transformer_fastpath, {"module": "enc", "module_type": "TransformerEncoder"}),
    GalleryCase("symbolic_drift", "divergence", "NUM004", "a symbolic computing tanh-GELU for exact GELU",
                symbolic_drift, {"module": "b2.act", "node": "/b2/act/"}),
    GalleryCase("misspelled_provider", "providers", "EP001", "'CudaExecutionProvider'",
                misspelled_provider, {"provider": "CudaExecutionProvider", "suggestion": "CUDAExecutionProvider"}),
    GalleryCase("unavailable_provider", "providers", "EP002", "a provider this build lacks",
                unavailable_provider, {"provider": unavailable_provider_name() or ""}),
    GalleryCase("device_mismatch", "device", "DEV001", "model on CPU, inputs on 'meta'",
                device_mismatch, {"inputs_elsewhere": ["x"]}),
)


def names() -> list[str]:
    return [c.name for c in CASES]


def get(name: str) -> GalleryCase:
    for case in CASES:
        if case.name == name:
            return case
    raise InvalidInputError(f"No gallery case named {name!r}. Choose one of {names()}.")
