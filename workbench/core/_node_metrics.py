"""Per-node measurements behind ``node_stats``: ORT profiling (time, provider), precision, error.

Profiling runs the model with the caller's ``SessionConfig``; ONNX Runtime names nodes after its own
graph optimizations, so the optimized graph is saved next to the profile (a private scratch folder,
removed afterwards) and each fused node is mapped back to the graph node that produced the same
output value. Nodes ORT added (Memcpy, layout reorders) keep their ORT names.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import onnx

from workbench.core._io import OnnxModel
from workbench.core._workdirs import new_scratch_dir
from workbench.core.feeds import build_feed
from workbench.core.ort_errors import run_errors
from workbench.core.placement import node_durations, parse_profile, read_profile
from workbench.core.session import SessionConfig, open_session

#: Op types that compute in 8-bit integers (or convert to/from them), any domain.
INT8_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    "QLinearConv", "QLinearMatMul",
})
#: com.microsoft contrib ops that compute in 8-bit integers (their names start with these).
INT8_MS_PREFIXES = ("QLinear", "QGemm", "QAttention", "QOrdered", "QEmbedLayerNormalization",
                    "DynamicQuantize", "MatMulIntegerToFloat", "QuickGeluQ")

_FP16 = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
_FP32 = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}


def node_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def is_int8_op(op_type: str, domain: str = "") -> bool:
    if op_type in INT8_OPS:
        return True
    return domain == "com.microsoft" and op_type.startswith(INT8_MS_PREFIXES)


def _elem_types(proto: onnx.ModelProto) -> dict[str, int]:
    """Value name -> element type, from shape inference (if it fails: what the file already says)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - a graph onnx cannot infer (custom domains) keeps its own value_info
        inferred = proto
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]
             if v.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def precisions(proto: onnx.ModelProto) -> dict[str, str]:
    """Graph node name -> "int8" | "fp16" | "fp32" | "other", from its op type and value types.

    "int8" is a quantized op (``INT8_OPS``, com.microsoft ``QLinear*``...): the nodes a quantizer adds.
    Otherwise a node touching float16/bfloat16 values is "fp16", float/double "fp32", and the rest
    (shape arithmetic, moving int8 tensors around) "other".
    """
    types = _elem_types(proto)
    out: dict[str, str] = {}
    for i, node in enumerate(proto.graph.node):
        kinds = {types.get(v) for v in [*node.input, *node.output] if v}
        if is_int8_op(node.op_type, node.domain):
            label = "int8"
        elif kinds & _FP16:
            label = "fp16"
        elif kinds & _FP32:
            label = "fp32"
        else:  # shape arithmetic, and data movement of int8 tensors (Gather, Transpose): no float math

            label = "other"
        out[node_name(node, i)] = label
    return out


@dataclass
class Profiled:
    """What one profiling session found: per ORT node, median ms per run, provider and op type."""

    ms: dict[str, float]
    provider: dict[str, str]
    op_type: dict[str, str]
    to_graph: dict[str, str]  # ORT node name -> graph node name (itself when unchanged)
    runs: int
    run_ms: float
    optimized: onnx.ModelProto | None = None  # the graph ORT ran (saved by the profiling session)


def _to_graph(proto: onnx.ModelProto, optimized: onnx.ModelProto | None, names: Sequence[str]) -> dict[str, str]:
    """ORT node name -> graph node name: the same name, else the graph node producing one of its outputs."""
    graph_names = {node_name(n, i) for i, n in enumerate(proto.graph.node)}
    producer = {v: node_name(n, i) for i, n in enumerate(proto.graph.node) for v in n.output if v}
    outputs: dict[str, list[str]] = {}
    if optimized is not None:
        outputs = {node_name(n, i): list(n.output) for i, n in enumerate(optimized.graph.node)}
    mapping: dict[str, str] = {}
    for name in names:
        if name in graph_names:
            mapping[name] = name
            continue
        hit = next((producer[v] for v in outputs.get(name, []) if v in producer), None)
        if hit is not None:
            mapping[name] = hit
    return mapping


def profile_nodes(onnx_model: OnnxModel, proto: onnx.ModelProto, inputs: Any, config: SessionConfig,
                  runs: int) -> Profiled:
    """Run ``runs`` profiled runs after one warm-up; each node's time is its median kernel time over them
    (one stalled run does not make a node look slow)."""
    folder = new_scratch_dir("profiles")
    optimized_path = folder / "optimized.onnx"
    cfg = config.replace(enable_profiling=True, optimized_model_path=str(optimized_path))
    try:
        session = open_session(onnx_model, cfg)
        feed = build_feed(session, inputs)
        with run_errors(session, feed):
            for _ in range(runs + 1):
                session.run(None, feed)
        events = read_profile(session)
        optimized = None
        with contextlib.suppress(Exception):  # no optimized copy: fused nodes stay unmapped
            optimized = onnx.load(str(optimized_path), load_external_data=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    durations, kept = node_durations(events, skip_runs=1)
    ms = {name: float(np.median(times)) / 1000.0 for name, times in durations.items()}
    placed = {p.node: p for p in parse_profile(events)}
    run_events = sorted((float(e["ts"]), float(e.get("dur", 0))) for e in events
                        if e.get("cat") == "Session" and e.get("name") == "model_run")[1:]
    run_ms = float(np.median([d for _, d in run_events])) / 1000.0 if run_events else float("nan")
    return Profiled(ms, {n: p.provider for n, p in placed.items()}, {n: p.op_type for n, p in placed.items()},
                    _to_graph(proto, optimized, list(ms)), kept, run_ms, optimized)


def node_errors(model: Any, proto: onnx.ModelProto, inputs: Any, *, optimized: onnx.ModelProto | None = None,
                label: str = "exported graph") -> tuple[dict[str, tuple[float, str, float]], Any]:
    """Node name -> (relative error, module path, max abs) from the layerwise divergence; and the divergence.

    With ``optimized`` (the graph ORT ran) the comparison runs on it and the names are its node names.

    The relative error is ``NodeError.rel_error``: ``max |onnx - torch| / max |torch|`` over the node's output.
    """
    import torch

    from workbench.core.divergence import layerwise

    from workbench.core._locks import TORCH_LOCK

    tensors = [t if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t)) for t in _as_list(inputs)]
    with TORCH_LOCK.exclusive():  # forward hooks on the model: no other run of it meanwhile
        if optimized is None:
            div = layerwise(model, proto, tensors)
        else:  # the graph as ORT ran it; its modules are looked up by value name in the exported graph
            div = layerwise(model, optimized, tensors, scope_source=proto, graph_label=label)
    return {n.node: (n.rel_error, n.module, n.max_abs) for n in div.nodes}, div


def _as_list(inputs: Any) -> list[Any]:
    if isinstance(inputs, dict):
        return list(inputs.values())
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    return [inputs]
