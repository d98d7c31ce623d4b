"""Per-node figures from ``NodeStats``: time by op type (bars) and the top nodes (table figure or HTML).

    >>> stats = wb.node_stats("model.onnx", inputs)
    >>> viz.op_time_figure(stats)             # where the time goes, by op type
    >>> viz.top_nodes_figure(stats, 10)       # the ten slowest nodes as a plotly table
    >>> viz.top_nodes_html(stats, 10)         # the same as a plain (escaped) HTML table
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from workbench.core._format import esc
from workbench.core.nodes import METRICS, NodeRow, NodeStats
from workbench.errors import InvalidInputError
from workbench.viz._common import color, expect, layout, positive_int

__all__ = ["op_time_figure", "top_nodes_figure", "top_nodes_html", "top_rows"]

_COLUMNS = ("node", "op type", "module", "ms", "share", "provider", "precision", "error")


def _stats(stats: Any) -> NodeStats:
    return expect(stats, NodeStats, "a wb.NodeStats from wb.node_stats(...)")


def _metric(metric: str) -> str:
    if metric not in METRICS:
        raise InvalidInputError(f"Unknown node metric {metric!r}. Use one of {list(METRICS)}.")
    return metric


def op_time_figure(stats: NodeStats, *, top: int = 15, title: str | None = None) -> go.Figure:
    """Horizontal bars of profiled time per op type (ms per run), slowest first, with each bar's share."""
    stats = _stats(stats)
    positive_int(top, "top")
    ops = [(op, v) for op, v in stats.by_op_type().items() if v["ms"] > 0]
    shown = ops[:top]
    fig = go.Figure(go.Bar(
        y=[op for op, _ in shown], x=[v["ms"] for _, v in shown], orientation="h", marker=dict(color=color(0)),
        text=[f"{100 * v['share']:.1f}%" for _, v in shown], textposition="outside", cliponaxis=False,
        customdata=[[int(v["nodes"])] for _, v in shown],
        hovertemplate="%{y}: %{x:.4f} ms per run, %{text} of the total, %{customdata[0]} node(s)<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(title_text="ms per run", rangemode="tozero")
    more = f"; the {top} slowest of {len(ops)} op types" if len(ops) > top else ""
    subtitle = (f"total {stats.total_ms:.3f} ms of node time per run, {stats.runs} run(s), {stats.config}{more}"
                if shown else "no node time was profiled")
    fig = layout(fig, title or "Time by op type", subtitle=subtitle, height=max(300, 22 * len(shown) + 170))
    fig.update_layout(margin=dict(r=48), showlegend=False)
    return fig


def top_rows(stats: NodeStats, n: int = 10, metric: str = "latency") -> list[list[str]]:
    """The ``n`` top nodes by ``metric`` as rows of display strings (raw, not escaped)."""
    stats = _stats(stats)
    positive_int(n, "n")
    return [_cells(r) for r in stats.top(n, _metric(metric))]


def _shown(stats: NodeStats) -> list[int]:
    """Indices of ``_COLUMNS`` to show: node, op type, module, and the metrics that were measured."""
    measured = [m for m in stats.metrics if m not in stats.skipped]
    wanted = {"latency": (3, 4), "provider": (5,), "precision": (6,), "error": (7,)}
    return [0, 1, 2] + sorted(i for m in measured for i in wanted[m])


def _cells(r: NodeRow) -> list[str]:
    name = r.name + (f" (ran as {r.ort_name})" if r.ort_name else "")
    return [name, r.op_type, r.module, "" if r.latency_ms is None else f"{r.latency_ms:.4f}",
            "" if r.share is None else f"{100 * r.share:.1f}%",
            (r.provider or "").replace("ExecutionProvider", "") + (" (Memcpy)" if r.memcpy else ""),
            r.precision or "", "" if r.error is None else f"{r.error:.2e}"]


def top_nodes_figure(stats: NodeStats, n: int = 10, metric: str = "latency", *, title: str | None = None) -> go.Figure:
    """A plotly table of the ``n`` top nodes by ``metric`` (node, op type, module and every metric)."""
    shown = _shown(_stats(stats))
    rows = [[row[i] for i in shown] for row in top_rows(stats, n, metric)]
    columns = list(zip(*rows)) if rows else [[] for _ in shown]
    fig = go.Figure(go.Table(
        header=dict(values=[_COLUMNS[i] for i in shown], fill_color="#f6f8fa", align="left"),
        cells=dict(values=columns, align="left", height=22)))
    fig = layout(fig, title or f"Top nodes by {metric}", subtitle=f"{len(rows)} of {len(stats.rows)} nodes",
                 height=max(220, 24 * len(rows) + 150))
    return fig


def top_nodes_html(stats: NodeStats, n: int = 10, metric: str = "latency") -> str:
    """The ``n`` top nodes by ``metric`` as a small HTML table (every cell escaped; module in the title)."""
    shown = _shown(_stats(stats))
    rows = [[row[i] for i in shown] for row in top_rows(stats, n, metric)]
    head = "".join(f"<th>{esc(_COLUMNS[i])}</th>" for i in shown)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    caption = f"top {len(rows)} nodes by {esc(metric)}"
    if metric == "latency" and stats.total_ms == stats.total_ms:
        caption += f" (of {stats.total_ms:.3f} ms per run)"
    return (f"<table class='wb-table wb-nodes'><caption>{caption}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")
