"""Figures of a ``SweepResult``: latency against batch size per config, and speedup over eager."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.sweep import EAGER, SweepResult, SweepRow
from workbench.viz._common import MUTED_COLOR, color, empty_figure, expect, layout, ms

_MAX_COLS = 3
_WHAT = "a wb.SweepResult (from wb.sweep)"


def _ordered(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _seq_title(seq: int | None) -> str:
    return "no sequence axis" if seq is None else f"seq = {seq}"


def _band(rows: list[SweepRow], config: str, seq: int | None, i: int) -> go.Scatter:
    x = [r.batch for r in rows]
    upper = [ms(r.p95) for r in rows]
    lower = [ms(r.p50) for r in rows]
    return go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", mode="lines", line=dict(width=0),
                      fillcolor=color(i), opacity=0.2, name=f"{config} p50..p95", legendgroup=config,
                      showlegend=False, hoverinfo="skip", meta={"config": config, "seq": seq, "kind": "band"})


def latency_figure(result: SweepResult, *, band: bool = True) -> go.Figure:
    """Median latency (ms) against batch size, one line per config (eager included), one panel per
    sequence length; with ``band`` the p50..p95 range is shaded. Failed cells are left out."""
    expect(result, SweepResult, _WHAT)
    ok = [r for r in result.rows if r.ok]
    title = "Latency vs batch size (p50 line, p50..p95 band)"
    if not ok:
        return empty_figure(title, f"No successful cells ({len(result.rows)} rows, {len(result.errors)} failed).")
    seqs = _ordered([r.seq for r in ok])
    configs = _ordered([r.config for r in ok])
    cols = min(len(seqs), _MAX_COLS)
    rows_n = math.ceil(len(seqs) / cols)
    fig = make_subplots(rows=rows_n, cols=cols, subplot_titles=[_seq_title(s) for s in seqs],
                        shared_yaxes=False, horizontal_spacing=0.07)
    for i, config in enumerate(configs):
        shown = False
        for k, seq in enumerate(seqs):
            cells = sorted((r for r in ok if r.config == config and r.seq == seq), key=lambda r: r.batch)
            if not cells:
                continue
            where = dict(row=k // cols + 1, col=k % cols + 1)
            if band:
                fig.add_trace(_band(cells, config, seq, i), **where)
            fig.add_trace(go.Scatter(
                x=[r.batch for r in cells], y=[ms(r.p50) for r in cells], mode="lines+markers", name=config,
                legendgroup=config, showlegend=not shown, line=dict(color=color(i)),
                customdata=[[ms(r.p95), r.throughput] for r in cells], meta={"config": config, "seq": seq, "kind": "p50"},
                hovertemplate="batch %{x}<br>p50 %{y:.3f} ms<br>p95 %{customdata[0]:.3f} ms<br>"
                              "%{customdata[1]:.4g} items/s<extra>" + config + "</extra>",
            ), **where)
            shown = True
    batches = sorted({r.batch for r in ok})
    fig.update_xaxes(title="batch size", tickmode="array", tickvals=batches)
    fig.update_yaxes(title="latency (ms)", rangemode="tozero")
    return layout(fig, title, height=380 * rows_n)


def speedup_figure(result: SweepResult) -> go.Figure:
    """Eager p50 / config p50 at each (batch, seq), one bar group per shape; 1 (eager) marked."""
    expect(result, SweepResult, _WHAT)
    cells = [r for r in result.rows if r.ok and r.config != EAGER and r.speedup is not None]
    title = "Speedup over eager PyTorch (p50)"
    if not cells:
        return empty_figure(title, "No speedups: the sweep has no successful eager and ONNX Runtime cells to compare.")
    shapes = _ordered([(r.batch, r.seq) for r in result.rows])
    labels = {s: f"b={s[0]}" + (f", s={s[1]}" if s[1] is not None else "") for s in shapes}
    fig = go.Figure()
    for i, config in enumerate(_ordered([r.config for r in cells])):
        mine = {(r.batch, r.seq): r for r in cells if r.config == config}
        keys = [s for s in shapes if s in mine]
        fig.add_trace(go.Bar(x=[labels[s] for s in keys], y=[mine[s].speedup for s in keys], name=config,
                             marker=dict(color=color(i + 1)), meta={"config": config},
                             text=[f"{mine[s].speedup:.2f}x" for s in keys], textposition="outside"))
    fig.add_hline(y=1.0, line=dict(color=MUTED_COLOR, dash="dash"), annotation_text="eager")
    fig.update_xaxes(title="shape", type="category")
    fig.update_yaxes(title="speedup (x)", rangemode="tozero")
    return layout(fig, title, barmode="group")
