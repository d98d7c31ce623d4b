"""Op-type histograms: of one model (``ModelSummary``), or before/after a rewrite (``OptimizeResult``,
``QuantizeResult``, ``TransformerOptimizeResult``: anything with ``before`` and ``after`` counters)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

import plotly.graph_objects as go

from workbench.core.graph import ModelSummary
from workbench.errors import InvalidInputError, describe
from workbench.viz._common import color, count_axis, layout, positive_int


def _histograms(source: Any) -> dict[str, Counter[str]]:
    if isinstance(source, ModelSummary):
        return {"ops": Counter(source.ops)}
    before, after = getattr(source, "before", None), getattr(source, "after", None)
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return {"before": Counter(before), "after": Counter(after)}
    if isinstance(source, Mapping) and all(isinstance(v, int) for v in source.values()):
        return {"ops": Counter(source)}
    raise InvalidInputError(
        f"Expected a wb.ModelSummary, a result with before/after op counters (wb.OptimizeResult, "
        f"wb.QuantizeResult) or a mapping op -> count, received {describe(source)}."
    )


def op_histogram_figure(source: Any, *, top: int = 25, title: str | None = None) -> go.Figure:
    """Horizontal bars of node count per op type, largest first, the ``top`` most frequent shown.

    A before/after source gives two bar series; ops are ranked by the larger of the two counts.
    """
    positive_int(top, "top")
    series = _histograms(source)
    ops = sorted(set().union(*series.values()), key=lambda op: (-max(c.get(op, 0) for c in series.values()), op))
    shown = ops[:top]
    fig = go.Figure()
    for i, (name, counts) in enumerate(series.items()):
        # cliponaxis=False: a count printed past the longest bar spills into the right margin rather
        # than being cut when the figure is narrow (the Graph tab at 1000 px).
        fig.add_trace(go.Bar(y=shown, x=[counts.get(op, 0) for op in shown], orientation="h", name=name,
                             marker=dict(color=color(i)), meta={"series": name}, cliponaxis=False,
                             text=[counts.get(op, 0) for op in shown], textposition="outside",
                             hovertemplate="%{y}: %{x} nodes<extra>" + name + "</extra>"))
    totals = _totals(series)
    more = f"; the {top} most frequent of {len(ops)} op types" if len(ops) > top else ""
    most = max((c.get(op, 0) for c in series.values() for op in shown), default=1)
    fig.update_yaxes(autorange="reversed", type="category")
    # Each bar carries its count, so the x axis needs no tick labels: at ~250 px they collided
    # ("0 5 10 15 20"). Its ticks still fall on whole numbers where a template shows them.
    fig.update_xaxes(**count_axis(most * 1.15), showticklabels=False, showgrid=False, zeroline=True,
                     range=[0, most * 1.15])
    fig = layout(fig, title or "Op types", subtitle=f"{totals}{more}", height=max(300, 22 * len(shown) + 160),
                 barmode="group", showlegend=len(series) > 1)
    fig.update_layout(margin=dict(r=36, b=48 if len(series) > 1 else 24), uniformtext=dict(minsize=10, mode="show"))
    return fig


def _totals(series: dict[str, Counter[str]]) -> str:
    """``106 nodes in 16 op types`` (one model), ``before 120 nodes, after 96 nodes`` (a rewrite)."""
    if len(series) == 1:
        counts = next(iter(series.values()))
        return f"{sum(counts.values())} nodes in {len(counts)} op types"  # short: fits ~250 px
    return ", ".join(f"{name} {sum(c.values())} nodes" for name, c in series.items())
