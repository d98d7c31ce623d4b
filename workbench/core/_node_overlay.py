"""``NodeStats.overlay(metric)``: the small JSON the Netron overlay draws (no UI library here).

Schema (kept in step with the widget, see ``NodeStats.overlay``)::

    {"metric": str, "kind": "sequential" | "categorical", "unit": "ms" | "rel" | "",
     "total": float | None,
     "nodes": {node name: {"value": float | str, "label": str, "title": str}},
     "legend": {"min": float, "max": float, "scale": "linear" | "log"}            # sequential
             | {"categories": [{"name": str, "color": "#rrggbb", "count": int}]},  # categorical
     "note": str}

Strings are raw (not HTML-escaped): the drawing sets them as text. No NaN, no numpy types.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.core.nodes import NodeRow, NodeStats

_OTHER = "#9D9D9D"


def _fmt_ms(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    if ms >= 0.01:
        return f"{ms:.3f} ms"
    return f"{ms * 1000:.1f} us"


def _label(metric: str, row: NodeRow) -> str:
    if metric == "latency":
        return _fmt_ms(float(row.latency_ms or 0.0))
    if metric == "error":
        return f"{float(row.error or 0.0):.1e}"
    value = str(row.value(metric))
    return value.replace("ExecutionProvider", "") if metric == "provider" else value


def _title(metric: str, row: NodeRow, stats: NodeStats) -> str:
    lines = [f"{row.name} ({row.op_type})"]
    if row.ort_name:
        lines.append(f"ran in ONNX Runtime as: {row.ort_name}")
    if row.module:
        lines.append(f"module: {row.module}")
    if row.latency_ms is not None:
        share = f" ({100 * row.share:.1f}% of {stats.total_ms:.3f} ms)" if row.share is not None else ""
        lines.append(f"latency: {row.latency_ms:.4f} ms per run{share}")
    if row.provider is not None:
        lines.append(f"provider: {row.provider}" + (" (Memcpy: copies between devices)" if row.memcpy else ""))
    if row.precision is not None:
        lines.append(f"precision: {row.precision}")
    if row.error is not None:
        lines.append(f"error vs PyTorch: {row.error:.3e} (max |diff| / max |reference|)")
    return "\n".join(lines)


def _category(metric: str, row: NodeRow) -> str:
    if metric == "provider" and row.memcpy:
        return "Memcpy"
    return str(row.value(metric))


def overlay(stats: NodeStats, metric: str) -> dict[str, Any]:
    from workbench.core.nodes import PRECISION_COLORS, PROVIDER_COLORS, _UNIT

    sequential = metric in ("latency", "error")
    nodes: dict[str, dict[str, Any]] = {}
    for row in stats.rows:
        raw = row.value(metric)
        if raw is None or (sequential and not math.isfinite(float(raw))):  # type: ignore[arg-type]
            continue
        value: float | str = float(raw) if sequential else _category(metric, row)  # type: ignore[arg-type]
        nodes[row.name] = {"value": value, "label": _label(metric, row), "title": _title(metric, row, stats)}
    if sequential:
        numbers = [float(n["value"]) for n in nodes.values()]
        legend: dict[str, Any] = {"min": min(numbers, default=0.0), "max": max(numbers, default=0.0),
                                  "scale": "log" if metric == "error" else "linear"}
    else:
        colors = PRECISION_COLORS if metric == "precision" else PROVIDER_COLORS
        counts = Counter(str(n["value"]) for n in nodes.values())
        order = [c for c in colors if c in counts] + sorted(c for c in counts if c not in colors)
        legend = {"categories": [{"name": c, "color": colors.get(c, _OTHER), "count": counts[c]} for c in order]}
    total = stats.total_ms if metric == "latency" and math.isfinite(stats.total_ms) else None
    note = "; ".join([*stats.notes, *(f"skipped: {why}" for m, why in stats.skipped.items() if m == metric)])
    return {"metric": metric, "kind": "sequential" if sequential else "categorical", "unit": _UNIT[metric],
            "total": total, "nodes": nodes, "legend": legend, "note": note}
