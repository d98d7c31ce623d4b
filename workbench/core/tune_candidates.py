"""The tuner's candidates: what the model and machine allow, the ONNX files to try, and the configs.

A *variant* is one ONNX file (the export as given, the attention-fused graph, dynamic INT8 of either,
FP16 on CUDA, a static-shape copy); a ``Candidate`` is a variant with a ``SessionConfig`` and a run mode.
Files are written once per tune run into its work folder and shared by every candidate that uses them;
the attention rewrite's export goes through ``wb.export``'s cache, so a second run reuses it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import onnx
import onnxruntime as ort
from torch import nn

from workbench.core._io import load_model
from workbench.core.quantize import _cpu_has_vnni, resolve_reduce_range
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tune_results import Candidate, Shape
from workbench.errors import brief

__all__ = ["Traits", "Variant", "candidate_name", "machine_traits", "spec_from_onnx"]

GPU_PROVIDERS = ("CUDAExecutionProvider",)


def physical_cores() -> int:
    """The CPUs this process may run on (affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Traits:
    """What the model and the machine allow: attention to fuse, a classifier head, VNNI, CUDA, cores."""

    attention: bool
    rewritable: int
    classifier: bool
    vnni: bool | None
    cuda: bool
    cores: int
    dynamic: bool
    notes: list[str] = field(default_factory=list)


def _graph_ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def _is_classifier(outputs: list[Any]) -> bool:
    """One float output of shape (batch, classes) with more than one class."""
    if len(outputs) != 1:
        return False
    arr = outputs[0]
    return getattr(arr, "ndim", 0) == 2 and arr.shape[1] > 1 and arr.dtype.kind == "f"


def machine_traits(model: nn.Module, proto: onnx.ModelProto, eager_outputs: list[Any]) -> Traits:
    """``Traits`` of ``model`` / its ONNX graph ``proto`` (outputs: eager outputs at one shape) on this machine."""
    rewritable = sum(isinstance(m, nn.TransformerEncoderLayer) for m in model.modules())
    mha = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    ops = _graph_ops(proto)
    attention = mha or "Softmax" in ops and "MatMul" in ops or bool({"Attention", "MultiHeadAttention"} & ops)
    init = {t.name for t in proto.graph.initializer}
    dynamic = any(d.dim_param or not d.HasField("dim_value") for i in proto.graph.input if i.name not in init
                  for d in i.type.tensor_type.shape.dim)
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    traits = Traits(attention=attention, rewritable=rewritable, classifier=_is_classifier(eager_outputs),
                    vnni=_cpu_has_vnni() if x86 else None, cuda="CUDAExecutionProvider" in ort.get_available_providers(),
                    cores=physical_cores(), dynamic=dynamic)
    if not traits.cuda:
        traits.notes.append("FP16 skipped: no CUDA provider in this onnxruntime (ONNX Runtime's CPU provider runs "
                            "FP16 through Cast nodes, slower than FP32).")
    if x86 and traits.vnni is False:
        traits.notes.append("INT8 uses reduce_range (7-bit weights): this x86 CPU lacks VNNI.")
    return traits


def spec_from_onnx(proto: onnx.ModelProto) -> ExportSpec:
    """An ``ExportSpec`` with the graph's input/output names and its symbolic dims as dynamic axes."""
    init = {t.name for t in proto.graph.initializer}
    axes: dict[str, dict[int, str]] = {}
    values = [v for v in proto.graph.input if v.name not in init] + list(proto.graph.output)
    for value in values:
        dims = {i: d.dim_param for i, d in enumerate(value.type.tensor_type.shape.dim) if d.dim_param}
        if dims:
            axes[value.name] = dims
    return ExportSpec(input_names=tuple(v.name for v in proto.graph.input if v.name not in init),
                      output_names=tuple(v.name for v in proto.graph.output), dynamic_axes=axes)


@dataclass
class Variant:
    """One ONNX file candidates share: its precision, how it was made, and (static) the one shape it takes."""

    key: str
    label: str
    path: Path | None
    precision: str = "fp32"
    recipe: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    shapes: tuple[Shape, ...] | None = None
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    @property
    def size_bytes(self) -> int:
        if self.path is None or not self.path.exists():
            return 0
        extra = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*.data"))
        return self.path.stat().st_size + extra


def candidate_name(variant: Variant, config: SessionConfig, *, io_binding: bool = False) -> str:
    """A short readable name: "int8 per-channel · fused · all · t2 · no-spin"."""
    parts = [variant.label, config.opt_level, f"t{config.intra_op_threads}" if config.intra_op_threads else "t-auto"]
    if config.execution_mode == "parallel":
        parts.append(f"parallel i{config.inter_op_threads}")
    if not config.allow_spinning:
        parts.append("no-spin")
    if io_binding:
        parts.append("io-binding")
    return " · ".join(parts)


def make_candidate(variant: Variant, config: SessionConfig, stage: str, *, io_binding: bool = False) -> Candidate:
    config = config.replace(providers=variant.providers)
    recipe = dict(variant.recipe, opt=config.opt_level, threads=str(config.intra_op_threads),
                  spinning="on" if config.allow_spinning else "off", mode=config.execution_mode,
                  io_binding="on" if io_binding else "off")
    assert variant.path is not None
    return Candidate(candidate_name(variant, config, io_binding=io_binding), variant.path, config, variant.precision,
                     recipe, io_binding=io_binding, shapes=variant.shapes, stage=stage)


# ------------------------------------------------------------------------------------------ building files


def _attempt(key: str, label: str, precision: str, recipe: dict[str, str], build: Callable[[], Path],
             **extra: Any) -> Variant:
    """Run ``build``; a failure becomes a ``Variant`` with ``error`` set (the candidate is kept as failed)."""
    try:
        path = build()
    except Exception as exc:
        return Variant(key, label, None, precision, recipe, error=f"{type(exc).__name__}: {brief(str(exc), 400)}",
                       **extra)
    return Variant(key, label, path, precision, recipe, **extra)


def fused_variant(model: nn.Module, source: Path, spec: ExportSpec, example: tuple[Any, ...], folder: Path,
                  traits: Traits, notes: list[str]) -> Variant:
    """The attention-fused graph: the encoder layers rewritten (``core/rewrite``), exported and fused by
    ``onnxruntime.transformers.optimizer``; without rewritable layers, the optimizer on the export as given."""
    from workbench.core.export import export
    from workbench.core.rewrite import fusable_attention
    from workbench.core.transformer import transformer_optimize

    recipe = {"graph": "attention-fused"}

    def build() -> Path:
        src, heads, hidden = source, 0, 0
        if traits.rewritable:
            twin, info = fusable_attention(model)
            notes.extend(f"attention rewrite skipped {s}" for s in info.skipped)
            if info:
                src = export(twin, example, folder / "rewritten.onnx", spec=spec).out
                heads, hidden = info.num_heads, info.hidden_size
                recipe["rewrite"] = f"{info.layers} encoder layers as separate Q/K/V"
        result = transformer_optimize(src, folder / "fused.onnx", num_heads=heads, hidden_size=hidden)
        fused = result.fused_ops
        attention = fused.get("Attention", 0) + fused.get("MultiHeadAttention", 0)
        recipe["fused"] = ", ".join(f"{op} {n}" for op, n in fused.items()) or "nothing"
        notes.append(f"transformer optimizer fused {recipe['fused']}" + ("" if attention else
                     " (attention did not fuse)"))
        if not fused:
            raise ValueError("the transformer optimizer fused nothing in this graph")
        return result.path

    return _attempt("fused", "fp32 fused", "fp32", recipe, build)


def int8_variant(base: Variant, folder: Path, *, per_channel: bool, matmul_only: bool = False,
                 inputs: Any = None) -> Variant:
    """Dynamic INT8 of ``base`` (``quantize.quantize_dynamic``; reduce_range chosen for this CPU). The key, the
    file and the label name the base: the INT8 of a caller's candidate never overwrites the export's."""
    from workbench.core.quantize import quantize_dynamic

    mode = "per-channel" if per_channel else "per-tensor"
    key = f"{base.key}-int8-{mode}{'-matmul' if matmul_only else ''}"
    of = {"plain": "", "fused": " fused"}.get(base.key, f" of {base.label}")
    label = "int8" + (" per-channel" if per_channel else "") + (" matmul-only" if matmul_only else "") + of
    reduce = resolve_reduce_range(None, "qint8")[0]
    recipe = dict(base.recipe, int8=mode, reduce_range="on" if reduce else "off",
                  op_types="MatMul" if matmul_only else "default")

    def build() -> Path:
        result = quantize_dynamic(base.path, folder / f"{key}.onnx", inputs=inputs, per_channel=per_channel,
                                  op_types=["MatMul"] if matmul_only else None)
        return result.path

    return _attempt(key, label, "int8", recipe, build)


def fp16_variant(base: Variant, folder: Path, inputs: Any = None) -> Variant:
    """FP16 of ``base`` for the CUDA provider (``quantize.to_fp16``, float32 inputs and outputs kept)."""
    from workbench.core.quantize import to_fp16

    def build() -> Path:
        return to_fp16(base.path, folder / f"{base.key}-fp16.onnx", inputs=inputs, tolerance="int8").path

    return _attempt(f"{base.key}-fp16", base.label.replace("fp32", "fp16"), "fp16", dict(base.recipe, fp16="on"),
                    build, providers=GPU_PROVIDERS + ("CPUExecutionProvider",))


def static_variant(base: Variant, folder: Path, shape: Shape, feed_shapes: dict[str, tuple[int, ...]]) -> Variant:
    """``base`` with every graph input fixed to its shape at ``shape`` (ONNX Runtime can fold the shape math)."""
    def build() -> Path:
        model = load_model(base.path)
        fixed = 0
        for value in model.graph.input:
            dims = feed_shapes.get(value.name)
            if dims is None:
                continue
            for dim, size in zip(value.type.tensor_type.shape.dim, dims):
                if dim.dim_param or not dim.HasField("dim_value"):
                    dim.Clear()
                    dim.dim_value = int(size)
                    fixed += 1
        if not fixed:
            raise ValueError("the graph's inputs have no dynamic dims to fix")
        out = folder / f"{base.key}-static-{shape[0]}x{shape[1]}.onnx"
        onnx.save(model, str(out))
        return out

    text = f"{shape[0]}x{shape[1]}" if shape[1] is not None else f"b{shape[0]}"
    return _attempt(f"{base.key}-static", f"{base.label} static {text}", base.precision,
                    dict(base.recipe, static=text), build, shapes=(shape,), providers=base.providers)
