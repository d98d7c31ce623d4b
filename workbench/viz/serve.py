"""Figures of a ``LoadResult`` (``wb.load_test``): throughput and latency percentiles against the
number of requests held in flight (concurrency).

Each function takes one ``LoadResult`` or a mapping ``{label: LoadResult}`` (one line per label:
the workbench server against the naive one, ``max_batch=1`` against 16). A level whose requests all
failed has no latency: its point is left out, and the subtitle says how many requests failed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.core.serve import LoadLevel, LoadResult
from workbench.errors import InvalidInputError, describe
from workbench.viz._common import FAIL_COLOR, MUTED_COLOR, color, empty_figure, layout

_WHAT = "a wb.LoadResult (from wb.load_test) or a dict {label: LoadResult}"
#: The percentiles drawn, as (LoadLevel field, label, line dash).
PERCENTILES = (("p50_ms", "p50", "dot"), ("p95_ms", "p95", "dash"), ("p99_ms", "p99", "solid"))
LoadResults = LoadResult | Mapping[str, LoadResult]


def _results(result: Any) -> dict[str, LoadResult]:
    """``{label: LoadResult}`` from one result (label "server") or a mapping of them."""
    if isinstance(result, LoadResult):
        return {"server": result}
    if isinstance(result, Mapping) and result and all(isinstance(v, LoadResult) for v in result.values()):
        return {str(k): v for k, v in result.items()}
    raise InvalidInputError(f"Expected {_WHAT}, received {describe(result)}.")


def _levels(result: LoadResult) -> list[LoadLevel]:
    """The levels in order of concurrency."""
    return sorted(result.levels, key=lambda level: level.concurrency)


def _answered(level: LoadLevel) -> bool:
    return level.ok > 0


def _error_count(level: LoadLevel) -> int:
    return int(sum(level.errors.values())) if level.errors else 0


def _errors_note(results: Mapping[str, LoadResult]) -> str:
    """"1,200 requests failed (503: 1,180, 500: 20)" over every level, or ""."""
    by_status: dict[int, int] = {}
    for result in results.values():
        for level in result.levels:
            for status, count in (level.errors or {}).items():
                by_status[int(status)] = by_status.get(int(status), 0) + int(count)
    total = sum(by_status.values())
    if not total:
        return ""
    parts = ", ".join(f"{_status_name(s)}: {n:,}" for s, n in sorted(by_status.items()))
    return f"<span style='color:{FAIL_COLOR}'>{total:,} requests failed ({parts})</span>"


def _status_name(status: int) -> str:
    return "no answer" if status <= 0 else str(status)


def _hover_batch(level: LoadLevel) -> str:
    mean = level.mean_batch
    return "-" if mean is None else f"{mean:.1f}"


def _concurrency_axis(results: Mapping[str, LoadResult]) -> dict[str, Any]:
    values = sorted({level.concurrency for r in results.values() for level in r.levels})
    log = len(values) > 2 and values[-1] / max(values[0], 1) >= 8
    return dict(title="concurrency (requests in flight)", type="log" if log else "linear", tickmode="array",
                tickvals=values, ticktext=[str(v) for v in values])


def _throughput_trace(label: str, levels: Sequence[LoadLevel], i: int, *, legend: bool = True) -> go.Scatter:
    return go.Scatter(
        x=[lv.concurrency for lv in levels], y=[lv.throughput_rps for lv in levels], mode="lines+markers",
        name=label, legendgroup=label, showlegend=legend, line=dict(color=color(i)),
        customdata=[[lv.ok, _error_count(lv), _hover_batch(lv)] for lv in levels],
        meta={"label": label, "kind": "throughput"},
        hovertemplate="concurrency %{x}<br>%{y:,.1f} requests/s<br>%{customdata[0]:,} ok, %{customdata[1]:,} failed"
                      "<br>mean batch %{customdata[2]}<extra>" + label.replace("<", "&lt;") + "</extra>")


def _latency_trace(label: str, levels: Sequence[LoadLevel], i: int, field: str, name: str, dash: str, *,
                   legend: bool = True, several: bool = False) -> go.Scatter:
    answered = [lv for lv in levels if _answered(lv)]
    trace_name = f"{label} {name}" if several else name
    return go.Scatter(
        x=[lv.concurrency for lv in answered], y=[float(getattr(lv, field)) for lv in answered],
        mode="lines+markers", name=trace_name, legendgroup=label if several else name, showlegend=legend,
        line=dict(color=color(i) if several else _percentile_color(name), dash=dash if several else "solid"),
        meta={"label": label, "kind": name},
        hovertemplate="concurrency %{x}<br>" + name + " %{y:.2f} ms<extra>" + trace_name.replace("<", "&lt;")
                      + "</extra>")


def _percentile_color(name: str) -> str:
    return {"p50": color(2), "p95": color(1), "p99": color(3)}.get(name, MUTED_COLOR)


def load_throughput_figure(result: LoadResults) -> go.Figure:
    """Requests answered per second against concurrency, one line per result (hover: ok/failed
    requests and the mean batch the server ran)."""
    results = _results(result)
    title = "Throughput vs concurrency"
    if not any(r.levels for r in results.values()):
        return empty_figure(title, "No load levels ran (the load test was cancelled before the first).")
    fig = go.Figure()
    for i, (label, r) in enumerate(results.items()):
        fig.add_trace(_throughput_trace(label, _levels(r), i))
    fig.update_xaxes(**_concurrency_axis(results))
    fig.update_yaxes(title="requests/s", rangemode="tozero")
    subtitle = "answered requests per second (2xx)" + _sub(_errors_note(results))
    return layout(fig, title, subtitle=subtitle, showlegend=len(results) > 1)


def load_latency_figure(result: LoadResults, *, percentiles: Sequence[str] = ("p50", "p95", "p99")) -> go.Figure:
    """Latency percentiles (ms, of the answered requests) against concurrency: for one result a
    line per percentile; for several, one colour per result and a dash per percentile."""
    results = _results(result)
    fields = [p for p in PERCENTILES if p[1] in percentiles]
    if not fields:
        raise InvalidInputError(f"percentiles must name some of {[p[1] for p in PERCENTILES]}, "
                                f"received {list(percentiles)!r}.")
    title = "Latency vs concurrency"
    if not any(_answered(lv) for r in results.values() for lv in r.levels):
        return empty_figure(title, "No answered requests: nothing to time.")
    fig = go.Figure()
    several = len(results) > 1
    for i, (label, r) in enumerate(results.items()):
        for field, name, dash in fields:
            fig.add_trace(_latency_trace(label, _levels(r), i, field, name, dash, several=several))
    fig.update_xaxes(**_concurrency_axis(results))
    fig.update_yaxes(title="latency (ms)", rangemode="tozero")
    subtitle = "client-side time per request, send to answer" + _sub(_errors_note(results))
    return layout(fig, title, subtitle=subtitle)


def load_figure(result: LoadResults) -> go.Figure:
    """Throughput (left) and p99 latency (right) against concurrency, side by side: the Serve
    panel's live plot."""
    results = _results(result)
    title = "Load test"
    if not any(r.levels for r in results.values()):
        return empty_figure(title, "No load levels yet: press Load test.")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["throughput (requests/s)", "p99 latency (ms)"],
                        horizontal_spacing=0.12)
    for i, (label, r) in enumerate(results.items()):
        levels = _levels(r)
        fig.add_trace(_throughput_trace(label, levels, i), row=1, col=1)
        p99 = _latency_trace(label, levels, i, "p99_ms", "p99", "solid", legend=False, several=True)
        p99.update(name=label, line=dict(color=color(i), dash="solid"), legendgroup=label)
        fig.add_trace(p99, row=1, col=2)
    axis = _concurrency_axis(results)
    for col in (1, 2):
        fig.update_xaxes(**axis, row=1, col=col)
        fig.update_yaxes(rangemode="tozero", row=1, col=col)
    batches = [lv.mean_batch for r in results.values() for lv in r.levels if lv.mean_batch is not None]
    subtitle = f"mean batch the server ran: {min(batches):.1f}\u2013{max(batches):.1f}" if batches else ""
    errors = _errors_note(results)
    subtitle = f"{subtitle}<br>{errors}" if subtitle and errors else subtitle or errors
    return layout(fig, title, subtitle=subtitle, height=380, panels=1, showlegend=len(results) > 1)


def _sub(note: str) -> str:
    return f"<br>{note}" if note else ""
