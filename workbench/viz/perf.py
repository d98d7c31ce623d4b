"""Figures of the pipeline's performance stages: latency per optimization level, and accuracy
against latency of the INT8 and FP16 conversions."""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from workbench.core.bench import Measurement
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.session import OPT_LEVELS
from workbench.viz._common import FAIL_COLOR, MUTED_COLOR, PASS_COLOR, color, empty_figure, expect, layout, ms


def opt_levels_figure(levels: OptLevels) -> go.Figure:
    """Median latency (ms) of a session at each ONNX Runtime optimization level, the whisker up to
    p95, and the node count of the graph ONNX Runtime saved at that level."""
    expect(levels, OptLevels, "the optimize stage's wb.OptLevels")
    names = [lv for lv in OPT_LEVELS if lv in levels.latency]
    title = "Latency per optimization level"
    if not names:
        return empty_figure(title, "No level was timed" + (f": {levels.errors}" if levels.errors else "."))
    p50 = [ms(levels.latency[lv].p50) for lv in names]
    p95 = [ms(levels.latency[lv].p95) for lv in names]
    nodes = [levels.results[lv].nodes_after if lv in levels.results else None for lv in names]
    colors = [PASS_COLOR if lv == levels.best else color(0) for lv in names]
    fig = go.Figure(go.Bar(
        x=names, y=p50, marker=dict(color=colors), name="p50",
        error_y=dict(type="data", symmetric=False, array=[hi - lo for hi, lo in zip(p95, p50)],
                     arrayminus=[0.0] * len(names)),
        text=[f"{v:.3f} ms" + (f"<br>{n} nodes" if n is not None else "") for v, n in zip(p50, nodes)],
        textposition="inside", customdata=p95, hovertemplate="%{x}: p50 %{y:.3f} ms, p95 %{customdata:.3f} ms<extra></extra>",
    ))
    fig.update_xaxes(title="graph optimization level", type="category")
    fig.update_yaxes(title="latency (ms)", rangemode="tozero")
    subtitle = "median (p50) bar, whisker up to p95" + (f"; fastest: {levels.best}" if levels.best else "")
    return layout(fig, title, subtitle=subtitle, showlegend=False)


def quantize_figure(converted: Sequence[Converted], baseline: Measurement | None = None) -> go.Figure:
    """Accuracy against latency of the conversions: x the median latency (ms), y the gate's max
    absolute error against the FP32 model (log); green passed its gate, red failed. The FP32
    latency (``baseline``, default: the first conversion's) is a vertical line."""
    items = list(converted)
    for c in items:
        expect(c, Converted, "the int8/fp16 stages' wb.Converted results")
    baseline = baseline or next((c.baseline for c in items if c.baseline is not None), None)
    title = "Conversions: accuracy vs latency"
    shown = [c for c in items if c.latency is not None and c.result.gate is not None]
    if not shown:
        return empty_figure(title, "No conversion was both gated and timed.")
    fig = go.Figure()
    for c in shown:
        q = c.result
        fig.add_trace(go.Scatter(
            x=[ms(c.latency.p50)], y=[q.gate.max_abs], mode="markers+text", name=c.kind, text=[c.kind],  # type: ignore[union-attr]
            textposition="top center", meta={"kind": c.kind},
            marker=dict(size=14, color=PASS_COLOR if q.ok else FAIL_COLOR, line=dict(width=1, color="black")),
            customdata=[[q.tolerance, q.ratio, c.speedup or float("nan")]],
            hovertemplate=("%{text}: p50 %{x:.3f} ms, max abs %{y:.3g}<br>gate at %{customdata[0]}, size "
                           "x%{customdata[1]:.2f}, speedup %{customdata[2]:.2f}x<extra></extra>"),
        ))
    if baseline is not None:
        fig.add_vline(x=ms(baseline.p50), line=dict(color=MUTED_COLOR, dash="dash"), annotation_text="fp32 p50")
    fig.update_xaxes(title="median latency (ms)", rangemode="tozero")
    fig.update_yaxes(title="max abs error vs FP32", type="log", dtick="D2", exponentformat="power")
    return layout(fig, title, subtitle="green: passed its accuracy gate, red: failed it; dashed: FP32 p50")
