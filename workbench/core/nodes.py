"""Numbers per node: time, provider, precision and error against PyTorch, for tables and graph overlays.

    >>> stats = wb.node_stats(case.export().out, case.example_inputs, model=case.model)
    >>> stats.top(5, "latency")            # the five slowest nodes (NodeRow)
    >>> stats.overlay("latency")           # the JSON the Netron overlay draws (see NodeStats.overlay)

Latency and provider come from ONNX Runtime's profiler (``runs`` runs after one warm-up, at the given
inputs and config); precision from the file's op types and value types; error from the layerwise
divergence (``workbench.core.divergence``), which needs the PyTorch ``model``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from workbench.core._format import esc, fmt_num, html_table, text_table
from workbench.core._io import OnnxModel, load_model
from workbench.core._node_metrics import Profiled, is_int8_op, node_errors, node_name, precisions, profile_nodes
from workbench.core.divergence import node_scopes
from workbench.core.session import SessionConfig, check_config
from workbench.errors import InvalidInputError

__all__ = ["METRICS", "NodeRow", "NodeStats", "node_stats"]

METRICS = ("latency", "provider", "precision", "error")
_FIELD = {"latency": "latency_ms", "provider": "provider", "precision": "precision", "error": "error"}
_UNIT = {"latency": "ms", "error": "rel", "provider": "", "precision": ""}
PRECISION_COLORS = {"fp32": "#4C78A8", "fp16": "#F58518", "int8": "#E45756", "other": "#9D9D9D"}
PROVIDER_COLORS = {"CPUExecutionProvider": "#4C78A8", "CUDAExecutionProvider": "#54A24B",
                   "TensorrtExecutionProvider": "#B279A2", "Memcpy": "#E45756"}
_HEADERS = ("node", "op_type", "module", "latency_ms", "share", "provider", "precision", "error")


@dataclass
class NodeRow:
    """One node: its graph name (``ort_name`` when ONNX Runtime ran it under another name), op type,
    PyTorch module path and the metrics measured (None where not measured or not applicable)."""

    name: str
    op_type: str
    module: str = ""
    latency_ms: float | None = None
    share: float | None = None
    provider: str | None = None
    precision: str | None = None
    error: float | None = None
    ort_name: str = ""
    in_graph: bool = True
    memcpy: bool = False

    def value(self, metric: str) -> float | str | None:
        return getattr(self, _FIELD[_check_metric(metric)])


@dataclass
class NodeStats:
    """Per-node metrics of one ONNX model at one set of inputs and session config.

    ``total_ms`` is the profiled total: the sum of every node's kernel time per run (each node's median
    over ``runs`` runs), so latencies add up to it; ``run_ms`` is ONNX Runtime's median whole-run time,
    which adds the executor's overhead.
    ``untimed`` lists graph nodes with no timing of their own (fused by ONNX Runtime into another node,
    or folded away); ``bool()`` is True when every metric asked for was measured.
    """

    rows: list[NodeRow]
    metrics: tuple[str, ...]
    total_ms: float = float("nan")
    run_ms: float = float("nan")
    runs: int = 0
    config: str = ""
    untimed: list[str] = field(default_factory=list)
    first_divergent: str | None = None
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.skipped

    def values(self, metric: str) -> dict[str, float | str]:
        """Node name -> the metric's value, for every node that has one (what an overlay draws)."""
        return {r.name: v for r in self.rows if (v := r.value(metric)) is not None}

    def top(self, n: int = 10, metric: str = "latency") -> list[NodeRow]:
        """The ``n`` nodes with the largest value (sequential metrics) or grouped by category."""
        rows = [r for r in self.rows if r.value(metric) is not None]
        if metric in ("latency", "error"):
            return sorted(rows, key=lambda r: -float(r.value(metric)))[:n]  # type: ignore[arg-type]
        return sorted(rows, key=lambda r: (str(r.value(metric)), -(r.latency_ms or 0.0)))[:n]

    def by_op_type(self) -> dict[str, dict[str, float]]:
        """Op type -> {"nodes", "ms", "share"}, slowest first (only timed nodes count time)."""
        out: dict[str, dict[str, float]] = {}
        for r in self.rows:
            entry = out.setdefault(r.op_type, {"nodes": 0, "ms": 0.0, "share": 0.0})
            entry["nodes"] += 1
            entry["ms"] += r.latency_ms or 0.0
            entry["share"] += r.share or 0.0
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["ms"]))

    def precision_counts(self) -> Counter[str]:
        """Precision -> number of graph nodes."""
        return Counter(r.precision for r in self.rows if r.precision is not None and r.in_graph)

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows],
                            columns=[f.name for f in NodeRow.__dataclass_fields__.values()])  # type: ignore[attr-defined]

    def overlay(self, metric: str) -> dict[str, Any]:
        """The JSON the Netron overlay draws: {"metric", "kind", "unit", "total", "nodes": {name: {"value",
        "label", "title"}}, "legend", "note"} (the schema is in ``workbench.core._node_overlay``'s docstring)."""
        from workbench.core._node_overlay import overlay

        return overlay(self, _check_metric(metric))

    def _table_rows(self, rows: Sequence[NodeRow]) -> list[list[Any]]:
        return [[r.name, r.op_type, r.module, _num(r.latency_ms), _pct(r.share), r.provider or "", r.precision or "",
                 _num(r.error)] for r in rows]

    def _headline(self) -> str:
        timed = sum(1 for r in self.rows if r.latency_ms is not None)
        text = f"NodeStats({len(self.rows)} nodes; metrics {', '.join(self.metrics)}"
        if "latency" in self.metrics and "latency" not in self.skipped:
            text += f"; {timed} timed, total {fmt_num(self.total_ms)} ms over {self.runs} run(s) ({self.config})"
        return text + ")"

    def __repr__(self) -> str:
        lines = [self._headline()]
        key = "latency" if "latency" in self.metrics else self.metrics[0]
        lines.append(text_table(_HEADERS, self._table_rows(self.top(10, key))))
        lines += [f"  note: {n}" for n in self.notes] + [f"  skipped {m}: {why}" for m, why in self.skipped.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        key = "latency" if "latency" in self.metrics else self.metrics[0]
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        notes += "".join(f"<li>skipped {esc(m)}: {esc(why)}</li>" for m, why in self.skipped.items())
        return (f"<div><b>{esc(self._headline())}</b>"
                f"{html_table(_HEADERS, self._table_rows(self.top(15, key)), caption=f'top nodes by {key}')}"
                f"{f'<ul>{notes}</ul>' if notes else ''}</div>")


def _num(x: float | None) -> Any:
    return "" if x is None else x


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InvalidInputError(f"Unknown node metric {metric!r}. Use one of {list(METRICS)}.")
    return metric


def node_stats(
    onnx_model: OnnxModel,
    inputs: Any,
    *,
    config: SessionConfig | None = None,
    model: Any = None,
    metrics: Sequence[str] = METRICS,
    runs: int = 5,
    error_graph: str = "exported",
) -> NodeStats:
    """Per-node latency, provider, precision and error of ``onnx_model`` (a path or ``ModelProto``) at ``inputs``.

    ``error`` needs the PyTorch ``model`` the file was exported from (without it the metric is skipped
    with a note). ``runs`` profiled runs follow one warm-up run. ``error_graph="optimized"`` compares the
    graph as ONNX Runtime optimized it at ``config`` (where an optimization causes the drift, e.g. the GELU
    approximation) and puts each error on the graph node ONNX Runtime's node stands for; the default
    compares the exported graph.
    """
    if error_graph not in ("exported", "optimized"):
        raise InvalidInputError(f"error_graph must be 'exported' or 'optimized', got {error_graph!r}.")
    metrics = tuple(_check_metric(m) for m in metrics)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise InvalidInputError(f"runs must be a positive int, got {runs!r}.")
    if not isinstance(onnx_model, (str, bytes)) and type(onnx_model).__name__ == "InferenceSession":
        raise InvalidInputError("node_stats profiles its own session: pass the ONNX file or ModelProto, "
                                "not an InferenceSession.")
    config = check_config(config)
    proto = load_model(onnx_model, load_external_data=False)
    scopes = {k: v for k, v in node_scopes(proto).items() if not v.startswith("_empty_nn_module_stack")}
    prec = precisions(proto) if "precision" in metrics else {}
    rows = {node_name(n, i): NodeRow(node_name(n, i), n.op_type, scopes.get(node_name(n, i), ""),
                                     precision=prec.get(node_name(n, i)))
            for i, n in enumerate(proto.graph.node)}
    stats = NodeStats([], metrics, runs=runs, config=config.label())
    prof = None
    if "latency" in metrics or "provider" in metrics or ("error" in metrics and error_graph == "optimized"):
        prof = profile_nodes(onnx_model, proto, inputs, config, runs)
        if "latency" in metrics or "provider" in metrics:
            _add_profile(stats, rows, prof)
    if "error" in metrics:
        _add_errors(stats, rows, model, proto, inputs, prof if error_graph == "optimized" else None)
    stats.rows = list(rows.values())
    return stats


def _add_profile(stats: NodeStats, rows: dict[str, NodeRow], prof: Profiled) -> None:
    stats.total_ms, stats.run_ms, stats.runs = sum(prof.ms.values()), prof.run_ms, prof.runs
    timed: set[str] = set()
    for ort_name, ms in prof.ms.items():
        target = prof.to_graph.get(ort_name)
        op = prof.op_type.get(ort_name, "")
        if target is None or target in timed:  # an ORT-added node, or a second ORT node on one graph node
            row = rows.setdefault(ort_name, NodeRow(ort_name, op, in_graph=False, ort_name=ort_name,
                                                    precision="int8" if is_int8_op(op, "com.microsoft") else None))
        else:
            row = rows[target]
            row.ort_name = ort_name if ort_name != target else ""
        timed.add(row.name)
        row.latency_ms = ms if "latency" in stats.metrics else None
        row.share = ms / stats.total_ms if stats.total_ms > 0 and "latency" in stats.metrics else None
        row.memcpy = op.startswith("Memcpy")
        row.provider = prof.provider.get(ort_name) if "provider" in stats.metrics else None
    stats.untimed = [name for name, r in rows.items() if r.in_graph and name not in timed]
    fused = sum(1 for r in rows.values() if r.ort_name and r.in_graph)
    added = sum(1 for r in rows.values() if not r.in_graph)
    if stats.untimed or fused or added:
        stats.notes.append(f"{len(stats.untimed)} graph node(s) had no timing of their own (fused into another node "
                           f"or folded away by ONNX Runtime); {fused} graph node(s) carry the time of the fused node "
                           f"ONNX Runtime ran in their place; {added} node(s) ONNX Runtime added keep its names")
    if math.isnan(stats.total_ms) or stats.total_ms <= 0:
        stats.notes.append("the profile recorded no node time")


def _add_errors(stats: NodeStats, rows: dict[str, NodeRow], model: Any, proto: Any, inputs: Any,
                prof: Profiled | None) -> None:
    if model is None:
        stats.skipped["error"] = "needs the PyTorch model: pass model= (the nn.Module the file was exported from)"
        return
    if prof is not None and prof.optimized is None:
        stats.notes.append("ONNX Runtime saved no optimized graph: the error compares the exported graph")
    optimized = prof.optimized if prof is not None else None
    errors, div = node_errors(model, proto, inputs, optimized=optimized,
                              label=f"graph as ONNX Runtime optimizes it at {stats.config}")
    to_graph = prof.to_graph if optimized is not None and prof is not None else {}
    stats.first_divergent = to_graph.get(div.first_divergent_node or "", div.first_divergent_node)
    for ort_name, (rel, module, _) in errors.items():
        name = to_graph.get(ort_name, ort_name)
        if name in rows:
            rows[name].error = rel
            rows[name].module = module or rows[name].module
    if not errors:
        stats.notes.append("no node output could be matched to a PyTorch module output (error metric empty)")
    else:
        stats.notes.append(f"error: {len(errors)} node(s) compared with their PyTorch module; {div!r}")
