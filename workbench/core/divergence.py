"""Layerwise divergence: the first ONNX node whose output differs from PyTorch, and its module.

PyTorch side: forward hooks record every module's output. ONNX side: each node is mapped to the
module that produced it (the dynamo exporter's ``pkg.torch.onnx.name_scopes`` metadata, or the
TorchScript exporter's ``/block/act/Mul`` node names); a module's output in the graph is the last
value its nodes hand to the rest of the graph. Those values are made graph outputs of a copy of
the model, run once unoptimized, and compared with the module outputs in topological order.
Only modules called once are compared; values without a PyTorch counterpart are not.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from workbench.core._format import esc, fmt_num, html_table, text_table
from workbench.core._io import OnnxModel, load_model
from workbench.core.capture import captured_output
from workbench.core.compare import OutputDiff
from workbench.core.feeds import build_feed, flatten_outputs
from workbench.core.session import SessionConfig, open_session
from workbench.core.tolerance import Tolerance, resolve_tolerance

__all__ = ["Divergence", "NodeError", "layerwise", "module_outputs", "node_scopes", "value_scopes"]

Scope = tuple[str, str]  # (module path, module type)


@dataclass
class NodeError:
    """One compared node: its output value, the module it belongs to and the error against PyTorch."""

    node: str
    op_type: str
    value: str
    module: str
    module_type: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mismatches: int
    total: int
    ok: bool
    ref_max: float = 0.0  # max |PyTorch value| of the output: the scale of a relative error

    @property
    def rel_error(self) -> float:
        """``max_abs / max |reference|``: the error relative to the output's scale (0 for an exact match);
        unlike the elementwise ``max_rel`` it does not blow up on outputs that cross zero."""
        return float(self.max_abs) / max(float(self.ref_max), 1e-12)


@dataclass
class Divergence:
    """Per compared node, the error against PyTorch; ``first`` is the first node beyond tolerance.

    ``onnx_model`` is the ONNX file the node names belong to (the exported graph, or the graph as ONNX
    Runtime optimized it); ``bool()`` is True when no node diverges.
    """

    nodes: list[NodeError]
    tolerance: str
    rtol: float
    atol: float
    graph: str = "exported graph"
    inputs: str = "the example"
    unmatched_modules: list[str] = field(default_factory=list)
    onnx_model: Path | None = None

    @property
    def first(self) -> NodeError | None:
        return next((n for n in self.nodes if not n.ok), None)

    @property
    def first_divergent_node(self) -> str | None:
        return self.first.node if self.first else None

    @property
    def module(self) -> str | None:
        return self.first.module if self.first else None

    @property
    def node_errors(self) -> dict[str, float]:
        """ONNX node name -> max abs error (for graph overlays)."""
        return {n.node: n.max_abs for n in self.nodes}

    def __bool__(self) -> bool:
        return self.first is None

    def _rows(self) -> list[list[Any]]:
        return [[n.node, n.op_type, n.module, n.module_type, str(list(n.shape)), n.max_abs, n.max_rel,
                 "ok" if n.ok else "DIVERGES"] for n in self.nodes]

    _HEADERS = ("node", "op_type", "module", "module_type", "shape", "max_abs", "max_rel", "verdict")

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self._rows(), columns=list(self._HEADERS))

    def text_table(self) -> str:
        return text_table(self._HEADERS, self._rows())

    def _headline(self) -> str:
        if self.first is None:
            return (f"Layerwise ({self.graph}, {self.inputs}): {len(self.nodes)} nodes compared with PyTorch, "
                    f"none beyond {self.tolerance}")
        f = self.first
        return (f"Layerwise ({self.graph}, {self.inputs}): first divergent node {f.node!r} ({f.op_type}) in module "
                f"{f.module!r} ({f.module_type}), max abs {fmt_num(f.max_abs)}, max rel {fmt_num(f.max_rel)}, "
                f"{f.mismatches}/{f.total} beyond {self.tolerance}")

    def __repr__(self) -> str:
        return self._headline()

    def _repr_html_(self) -> str:
        return f"<div><b>{esc(self._headline())}</b>{html_table(self._HEADERS, self._rows())}</div>"


def _scope_from_metadata(node: onnx.NodeProto) -> Scope | None:
    meta = {p.key: p.value for p in node.metadata_props}
    raw = meta.get("pkg.torch.onnx.name_scopes")
    if raw is None:
        return None
    try:
        scopes = ast.literal_eval(raw)
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (ValueError, SyntaxError):
        return None
    # The list is the module path from the root, then the FX node's own name.
    modules = scopes[:-1] if len(scopes) > 1 else scopes
    path = modules[-1] if modules else ""
    kind = classes[len(modules) - 1] if 0 < len(modules) <= len(classes) else ""
    return path, str(kind).rsplit(".", 1)[-1]


def _scope_from_name(node: onnx.NodeProto) -> Scope | None:
    name = node.name
    if not name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p][:-1]
    return ".".join(parts), ""


def value_scopes(proto: onnx.ModelProto) -> dict[str, tuple[str, str, str]]:
    """Value name -> (module path, module type, producing node) for values of nodes with a known scope."""
    out: dict[str, tuple[str, str, str]] = {}
    for i, node in enumerate(proto.graph.node):
        scope = _scope_from_metadata(node) or _scope_from_name(node)
        if scope is None:
            continue
        for value in node.output:
            if value:
                out[value] = (scope[0], scope[1], node.name or f"{node.op_type}_{i}")
    return out


def node_scopes(proto: onnx.ModelProto) -> dict[str, str]:
    """Node name -> module path, from the exporter's metadata or node names."""
    return {node: module for module, _, node in value_scopes(proto).values()}


def module_outputs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """Each module's output tensors (first call only; modules called twice are dropped) and type."""
    outputs: dict[str, list[np.ndarray]] = {}
    types: dict[str, str] = {}
    calls: dict[str, int] = {}
    handles = []

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if calls[name] == 1:
                outputs[name] = [t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
                                 for t in flatten_outputs(out) if isinstance(t, torch.Tensor)]
                types[name] = type(module).__name__
        return record

    for name, sub in model.named_modules():
        if name:
            handles.append(sub.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return {k: v for k, v in outputs.items() if calls.get(k) == 1}, types


def _exits(proto: onnx.ModelProto, scopes: dict[str, Scope]) -> dict[str, list[tuple[str, str, str]]]:
    """Module path -> [(value, node, op_type)] the module's nodes hand to nodes outside it, in order."""
    graph_outputs = {o.name for o in proto.graph.output}
    consumers: dict[str, list[str]] = {}
    for i, node in enumerate(proto.graph.node):
        for value in node.input:
            consumers.setdefault(value, []).append(node.name or f"{node.op_type}_{i}")
    node_module = {name: scope[0] for name, scope in scopes.items()}
    exits: dict[str, list[tuple[str, str, str]]] = {}
    for i, node in enumerate(proto.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        if name not in scopes:
            continue
        path = scopes[name][0]
        prefixes = [".".join(path.split(".")[:k]) for k in range(1, path.count(".") + 2)] if path else []
        for value in node.output:
            if not value:
                continue
            users = [node_module.get(c) for c in consumers.get(value, [])]
            for prefix in prefixes:
                leaves = value in graph_outputs or any(
                    u is None or not (u == prefix or u.startswith(prefix + ".")) for u in users)
                if leaves:
                    exits.setdefault(prefix, []).append((value, name, node.op_type))
    return exits


def _scopes(proto: onnx.ModelProto, source: onnx.ModelProto) -> dict[str, Scope]:
    """Node name -> (module, module type): looked up by value name in ``source``, else in ``proto``."""
    by_value = value_scopes(source)
    own = value_scopes(proto)
    scopes: dict[str, Scope] = {}
    for i, node in enumerate(proto.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        hit = next((by_value[v] for v in node.output if v in by_value), None) or \
            next((own[v] for v in node.output if v in own), None)
        if hit is not None:
            scopes[name] = (hit[0], hit[1])
    return scopes


def _run_values(proto: onnx.ModelProto, values: set[str], inputs: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """``values`` of ``proto`` (made graph outputs of a copy), run once unoptimized on ``inputs``."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    existing = {o.name for o in copy.graph.output}
    for value in sorted(values - existing):
        copy.graph.output.append(onnx.ValueInfoProto(name=value))
    with captured_output():  # ONNX Runtime's log about the extra outputs is not the user's business
        session = open_session(copy, SessionConfig(opt_level="disable"))
        outputs = session.run(None, build_feed(session, list(inputs)))
    names = [o.name for o in session.get_outputs()]
    return {n: np.asarray(v) for n, v in zip(names, outputs)}


def layerwise(
    model: nn.Module,
    onnx_model: OnnxModel,
    inputs: Sequence[torch.Tensor],
    *,
    tolerance: Tolerance = "fp32",
    scope_source: OnnxModel | None = None,
    graph_label: str = "exported graph",
    inputs_label: str = "the example",
) -> Divergence:
    """Compare every module's PyTorch output with the ONNX value that stands for it.

    ``scope_source`` is the graph whose node metadata or names give the modules (default: the
    graph itself); pass the exported graph when ``onnx_model`` is an ONNX Runtime-optimized copy,
    whose surviving value names are looked up there.
    """
    tol_name, rtol, atol = resolve_tolerance(tolerance)
    onnx_file = Path(onnx_model) if isinstance(onnx_model, (str, os.PathLike)) else None
    proto = load_model(onnx_model)
    source = load_model(scope_source) if scope_source is not None else proto
    torch_out, torch_types = module_outputs(model, inputs)
    exits = _exits(proto, _scopes(proto, source))
    candidates = {v for module in torch_out for v, _, _ in exits.get(module, [])}
    unmatched = [m for m in torch_out if not exits.get(m)]
    if not candidates:
        return Divergence([], tol_name, rtol, atol, graph_label, inputs_label, sorted(unmatched), onnx_file)
    values = _run_values(proto, candidates, inputs)
    # value -> (module, node, op_type, expected); a deeper module replaces its parent on a shared value
    chosen: dict[str, tuple[str, str, str, np.ndarray]] = {}
    for module in sorted(torch_out, key=lambda m: m.count(".")):
        pick = None
        for value, node, op_type in reversed(exits.get(module, [])):
            expected = next((t for t in torch_out[module] if tuple(t.shape) == values[value].shape), None)
            if expected is not None:
                pick = (value, (module, node, op_type, expected))
                break
        if pick is None:
            if exits.get(module):
                unmatched.append(module)
            continue
        chosen[pick[0]] = pick[1]
    order = {n.name or f"{n.op_type}_{i}": i for i, n in enumerate(proto.graph.node)}
    nodes: list[NodeError] = []
    for value, (module, node, op_type, expected) in sorted(chosen.items(), key=lambda kv: order.get(kv[1][1], 0)):
        actual = values[value]
        diff = OutputDiff.from_arrays(value, expected, actual.astype(expected.dtype, copy=False), rtol, atol)
        nodes.append(NodeError(node, op_type, value, module, torch_types.get(module, ""), tuple(actual.shape),
                               diff.max_abs, diff.max_rel, diff.mismatches, diff.total, diff.ok,
                               float(np.max(np.abs(expected))) if expected.size else 0.0))
    return Divergence(nodes, tol_name, rtol, atol, graph_label, inputs_label, sorted(set(unmatched)), onnx_file)
