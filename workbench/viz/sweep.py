"""Figures of a ``SweepResult``: latency against batch size per config, and speedup over eager."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.sweep import EAGER, SweepResult, SweepRow
from workbench.core.sweep_results import UNCLEAR
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


def _quartiles(result: SweepResult, row: SweepRow) -> tuple[float, float] | None:
    """The 25th and 75th percentile (ms) of a cell's runs, from its ``Measurement`` (None without one)."""
    m = result.measurements.get((row.config, row.batch, row.seq))
    if m is None:
        return None
    q25, q75 = np.percentile(np.asarray(m.raw_times, dtype=np.float64), [25, 75])
    return ms(q25), ms(q75)


def _band(result: SweepResult, rows: list[SweepRow], config: str, seq: int | None, i: int) -> go.Scatter | None:
    """The interquartile range of each cell as a shaded band (None where a cell has no raw times).

    Half the runs fall inside it: one slow run (a page fault, another process) moves it little,
    where a p50..p95 band grew to many times the line and flattened every other line."""
    quartiles = [_quartiles(result, r) for r in rows]
    if any(q is None for q in quartiles):
        return None
    x = [r.batch for r in rows]
    lower = [q[0] for q in quartiles]  # type: ignore[index]
    upper = [q[1] for q in quartiles]  # type: ignore[index]
    return go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself", mode="lines", line=dict(width=0),
                      fillcolor=color(i), opacity=0.2, name=f"{config} p25..p75", legendgroup=config,
                      showlegend=False, hoverinfo="skip", meta={"config": config, "seq": seq, "kind": "band"})


def _line(rows: list[SweepRow], config: str, seq: int | None, i: int, *, legend: bool) -> go.Scatter:
    return go.Scatter(
        x=[r.batch for r in rows], y=[ms(r.p50) for r in rows], mode="lines+markers", name=config,
        legendgroup=config, showlegend=legend, line=dict(color=color(i)),
        customdata=[[ms(r.p95), r.throughput] for r in rows], meta={"config": config, "seq": seq, "kind": "p50"},
        hovertemplate="batch %{x}<br>p50 %{y:.3f} ms<br>p95 %{customdata[0]:.3f} ms<br>"
                      "%{customdata[1]:.4g} items/s<extra>" + config + "</extra>",
    )


#: A band may reach this many times the panel's highest median before it is cut at the top.
BAND_CAP = 2.5


def latency_figure(result: SweepResult, *, band: bool = True) -> go.Figure:
    """Median latency (ms) against batch size, one line per config (eager included), one panel per
    sequence length; with ``band`` the interquartile range of each cell's runs is shaded (cells
    timed by ``wb.sweep`` keep their raw times), cut at ``BAND_CAP`` times the panel's highest
    median (the subtitle says so) so that a noisy cell cannot flatten the lines. Failed cells are
    left out."""
    expect(result, SweepResult, _WHAT)
    ok = [r for r in result.rows if r.ok]
    title = "Latency vs batch size"
    if not ok:
        return empty_figure(title, f"No successful cells ({len(result.rows)} rows, {len(result.errors)} failed).")
    seqs = _ordered([r.seq for r in ok])
    cols = min(len(seqs), _MAX_COLS)
    rows_n = math.ceil(len(seqs) / cols)
    fig = make_subplots(rows=rows_n, cols=cols, subplot_titles=[_seq_title(s) for s in seqs],
                        shared_yaxes=False, horizontal_spacing=0.1, vertical_spacing=0.3 / rows_n)
    configs, legend = _ordered([r.config for r in ok]), set()
    banded = cut = False
    for k, seq in enumerate(seqs):
        where = dict(row=k // cols + 1, col=k % cols + 1)
        line_top, band_top = _panel(fig, result, [r for r in ok if r.seq == seq], configs, legend, band, where)
        banded = banded or band_top > 0
        if band_top > BAND_CAP * line_top > 0:
            fig.update_yaxes(range=[0, BAND_CAP * line_top * 1.05], **where)
            cut = True
    fig.update_xaxes(title="batch size", tickmode="array", tickvals=sorted({r.batch for r in ok}))
    fig.update_yaxes(rangemode="tozero")
    for r in range(1, rows_n + 1):  # one y title per row: a second panel's would sit on the first's ticks
        fig.update_yaxes(title="latency (ms)", row=r, col=1)
    subtitle = "median (p50) line" + (", shaded: the middle half of the runs (p25..p75)" if banded else "")
    if cut:
        subtitle += f"<br>a noisy cell's band is cut at {BAND_CAP:g}\u00d7 the panel's highest median (hover: p95)"
    return layout(fig, title, subtitle=subtitle, height=340 * rows_n + 60, panels=1)


def _panel(fig: go.Figure, result: SweepResult, rows: list[SweepRow], configs: list[str], legend: set[str],
           band: bool, where: dict[str, int]) -> tuple[float, float]:
    """One sequence length's lines (and bands); the highest median and band top drawn (ms)."""
    line_top = band_top = 0.0
    for i, config in enumerate(configs):
        cells = sorted((r for r in rows if r.config == config), key=lambda r: r.batch)
        if not cells:
            continue
        shade = _band(result, cells, config, cells[0].seq, i) if band else None
        if shade is not None:
            fig.add_trace(shade, **where)
            band_top = max(band_top, max(shade.y))
        fig.add_trace(_line(cells, config, cells[0].seq, i, legend=config not in legend), **where)
        legend.add(config)
        line_top = max(line_top, max(ms(r.p50) for r in cells))
    return line_top, band_top


def _whiskers(rows: list[SweepRow], cap: float) -> dict[str, Any] | None:
    """Error bars from each row's 95% interval (None when no row has one); an unbounded top is cut at ``cap``."""
    if not any(r.speedup_low is not None for r in rows):
        return None
    up = [min(r.speedup_high, cap) - r.speedup if r.speedup_high is not None else 0.0 for r in rows]  # type: ignore[operator]
    down = [r.speedup - r.speedup_low if r.speedup_low is not None else 0.0 for r in rows]  # type: ignore[operator]
    return dict(type="data", symmetric=False, array=up, arrayminus=down, color=MUTED_COLOR, thickness=1.2, width=4)


def _bar_text(row: SweepRow) -> str:
    return f"{row.speedup:.2f}x" + ("<br>unclear" if row.verdict == UNCLEAR else "")


def speedup_figure(result: SweepResult) -> go.Figure:
    """Eager time / config time at each (batch, seq), one bar group per shape; 1 (eager) marked.

    Whiskers are each speed-up's 95% bootstrap interval (cells measured interleaved by
    ``wb.sweep``); a cell whose interval holds 1 is hatched and pale and labelled "unclear": the
    run shows no clear difference there, whichever side of 1 the bar ends."""
    expect(result, SweepResult, _WHAT)
    cells = [r for r in result.rows if r.ok and r.config != EAGER and r.speedup is not None]
    title = "Speedup over eager PyTorch"
    if not cells:
        return empty_figure(title, "No speedups: the sweep has no successful eager and ONNX Runtime cells to compare.")
    shapes = _ordered([(r.batch, r.seq) for r in result.rows])
    # Two short lines a label: nine or more shapes in a narrow figure stay level, not slanted and cut.
    labels = {s: f"b={s[0]}" + (f"<br>s={s[1]}" if s[1] is not None else "") for s in shapes}
    cap = 2.0 * max(r.speedup for r in cells)  # type: ignore[type-var]
    fig = go.Figure()
    for i, config in enumerate(_ordered([r.config for r in cells])):
        mine = {(r.batch, r.seq): r for r in cells if r.config == config}
        rows = [mine[s] for s in shapes if s in mine]
        unclear = [r.verdict == UNCLEAR for r in rows]
        fig.add_trace(go.Bar(
            x=[labels[(r.batch, r.seq)] for r in rows], y=[r.speedup for r in rows], name=config,
            marker=dict(color=color(i + 1), opacity=[0.45 if u else 1.0 for u in unclear],
                        pattern=dict(shape=["/" if u else "" for u in unclear])),
            error_y=_whiskers(rows, cap), meta={"config": config, "unclear": unclear},
            text=[_bar_text(r) for r in rows], textposition="outside",
            customdata=[[r.speedup_low, r.speedup_high, r.verdict or "-"] for r in rows],
            hovertemplate="%{x}<br>%{y:.2f}x, 95% interval [%{customdata[0]:.2f}, %{customdata[1]:.2f}]"
                          "<br>%{customdata[2]}<extra>" + config + "</extra>"))
    fig.add_hline(y=1.0, line=dict(color=MUTED_COLOR, dash="dash"))
    fig.update_xaxes(title="shape (b: batch, s: seq)", type="category")
    fig.update_yaxes(title="speedup (x)", rangemode="tozero")
    subtitle = "eager time / ONNX Runtime time, measured in turns: above the dashed line (1) is faster"
    if any(r.speedup_low is not None for r in cells):
        subtitle += "<br>whiskers: 95% interval; hatched, \"unclear\": no clear difference (the interval holds 1)"
    return layout(fig, title, subtitle=subtitle, barmode="group")
