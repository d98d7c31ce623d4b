"""Figures of a ``Comparison``: PyTorch vs ONNX Runtime values, the error histogram, per-output errors."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.compare import Comparison, OutputDiff
from workbench.viz._common import (
    FAIL_COLOR,
    MAX_POINTS,
    MUTED_COLOR,
    PASS_COLOR,
    color,
    empty_figure,
    expect,
    layout,
    positive_int,
    subsample,
)

_WHAT = "a wb.Comparison (from wb.compare or wb.compare_arrays)"


def _by_output(comparison: Comparison) -> dict[str, list[OutputDiff]]:
    """Output name -> its diffs over the samples (shape mismatches left out: nothing to pair up)."""
    groups: dict[str, list[OutputDiff]] = {}
    for diff in comparison.outputs:
        groups.setdefault(diff.name, []).append(diff)
    return groups


def _pairs(diffs: list[OutputDiff]) -> tuple[np.ndarray, np.ndarray]:
    """Expected and actual values of one output over all samples, flat, as float64, finite pairs only."""
    usable = [d for d in diffs if d.shape_mismatch is None and d.total]
    if not usable:
        return np.zeros(0), np.zeros(0)
    e = np.concatenate([np.asarray(d.expected, dtype=np.float64).reshape(-1) for d in usable])
    a = np.concatenate([np.asarray(d.actual, dtype=np.float64).reshape(-1) for d in usable])
    keep = np.isfinite(e) & np.isfinite(a)
    return e[keep], a[keep]


def values_scatter(comparison: Comparison, *, max_points: int = MAX_POINTS) -> go.Figure:
    """ORT's value (y) against PyTorch's (x) for every output, with the line y = x.

    At most ``max_points`` points are drawn in all, shared evenly among the outputs (a seeded
    random subsample that always keeps each output's largest error).
    """
    expect(comparison, Comparison, _WHAT)
    positive_int(max_points, "max_points")
    groups = {name: _pairs(diffs) for name, diffs in _by_output(comparison).items()}
    groups = {name: pair for name, pair in groups.items() if pair[0].size}
    title = f"PyTorch vs ONNX Runtime values ({comparison.tolerance})"
    if not groups:
        return empty_figure(title, "No comparable values (shape mismatches or empty outputs).")
    share = max(1, max_points // len(groups))
    fig = go.Figure()
    lo, hi = np.inf, -np.inf
    for i, (name, (e, a)) in enumerate(groups.items()):
        idx = subsample(e.size, share, keep=[int(np.argmax(np.abs(a - e)))])
        x, y = e[idx], a[idx]
        lo, hi = min(lo, float(x.min()), float(y.min())), max(hi, float(x.max()), float(y.max()))
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name=f"{name} ({len(idx)} of {e.size})", meta={"output": name},
            marker=dict(size=4, opacity=0.6, color=color(i)),
            hovertemplate="PyTorch %{x:.6g}<br>ORT %{y:.6g}<extra>" + name + "</extra>",
        ))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", meta={"output": None},
                             line=dict(color=MUTED_COLOR, dash="dash", width=1), hoverinfo="skip"))
    fig.update_xaxes(title="PyTorch (expected)")
    fig.update_yaxes(title="ONNX Runtime (actual)")
    return layout(fig, title)


def error_histogram(comparison: Comparison, *, bins: int = 50) -> go.Figure:
    """Histogram of |ORT - PyTorch| per output on a log count axis, with ``atol`` marked where it
    falls inside the range (a note says so when every error is below it).

    Counts come from ``numpy.histogram`` over every finite error (not a subsample), drawn as bars
    over common bins from 0 to the largest error.
    """
    expect(comparison, Comparison, _WHAT)
    positive_int(bins, "bins")
    errors: dict[str, np.ndarray] = {}
    for name, diffs in _by_output(comparison).items():
        parts = [np.asarray(d.abs_errors, dtype=np.float64).reshape(-1) for d in diffs if d.shape_mismatch is None]
        values = np.concatenate(parts) if parts else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size:
            errors[name] = values
    title = f"Absolute error |ORT - PyTorch| ({comparison.tolerance}, atol={comparison.atol:g})"
    if not errors:
        return empty_figure(title, "No finite errors to show.")
    top = max(float(v.max()) for v in errors.values())
    edges = np.linspace(0.0, top * (1 + 1e-9) if top > 0 else 1e-12, bins + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    fig = go.Figure()
    for i, (name, values) in enumerate(errors.items()):
        counts, _ = np.histogram(values, bins=edges)
        fig.add_trace(go.Bar(x=centers, y=counts, width=width, name=name, meta={"output": name},
                             marker=dict(color=color(i)), opacity=0.75,
                             hovertemplate="|error| ~ %{x:.3g}<br>%{y} values<extra>" + name + "</extra>"))
    if comparison.atol <= edges[-1] * 1.05:
        fig.add_vline(x=comparison.atol, line=dict(color=FAIL_COLOR, dash="dash"), annotation_text="atol")
    else:
        fig.add_annotation(text=f"every error is below atol ({top:.3g} < {comparison.atol:g})", showarrow=False,
                           x=1, y=1, xref="paper", yref="paper", xanchor="right", font=dict(color=PASS_COLOR))
    fig.update_xaxes(title="absolute error")
    fig.update_yaxes(title="count", type="log")
    return layout(fig, title, barmode="overlay", bargap=0)


def error_bars(comparison: Comparison) -> go.Figure:
    """Max absolute and max relative error per output (worst over the samples), with ``atol`` and
    ``rtol`` as lines; a bar is red where that output failed in some sample."""
    expect(comparison, Comparison, _WHAT)
    groups = _by_output(comparison)
    names = list(groups)
    max_abs = [max(d.max_abs for d in diffs) for diffs in groups.values()]
    max_rel = [max(d.max_rel for d in diffs) for diffs in groups.values()]
    colors = [PASS_COLOR if all(d.ok for d in diffs) else FAIL_COLOR for diffs in groups.values()]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("max absolute error", "max relative error"))
    for col, (label, values, tol) in enumerate((("max_abs", max_abs, comparison.atol),
                                                ("max_rel", max_rel, comparison.rtol)), start=1):
        shown = [v if np.isfinite(v) else None for v in values]
        text = [f"{v:.3g}" if np.isfinite(v) else "inf (shape mismatch)" for v in values]
        fig.add_trace(go.Bar(x=names, y=shown, name=label, marker=dict(color=colors), text=text, meta={"metric": label},
                             textposition="outside", showlegend=False), row=1, col=col)
        fig.add_hline(y=tol, line=dict(color=MUTED_COLOR, dash="dash"), row=1, col=col,
                      annotation_text=("atol" if col == 1 else "rtol") + f" {tol:g}")
    fig.update_yaxes(type="log")
    return layout(fig, f"Worst error per output at {comparison.tolerance}")
