"""Figures of ``wb.tune``: latency against error for every candidate (the Pareto front drawn), and
the speed-ups per shape of the chosen configuration and of PyTorch's own options, with their
confidence intervals.

Both take a whole ``TuneResult`` or, while a tune runs, the ``CandidateResult``s so far (the
``Tuner`` widget redraws its plot from them as each candidate finishes).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import plotly.graph_objects as go

from workbench.core._format import esc
from workbench.errors import InvalidInputError, describe
from workbench.viz._common import FAIL_COLOR, MUTED_COLOR, PASS_COLOR, color, empty_figure, layout

#: Colour and marker of a candidate per status; the chosen one drawn last, largest.
STATUS_STYLE: dict[str, tuple[str, str, int]] = {
    "passed": ("#0969da", "circle", 10), "pruned": (MUTED_COLOR, "circle-open", 9),
    "rejected": (FAIL_COLOR, "x", 10), "chosen": (PASS_COLOR, "star", 18),
}
STATUS_ORDER = ("pruned", "rejected", "passed", "chosen")
#: The statuses of a candidate that passed the accuracy gate.
PASSED = ("chosen", "passed", "pruned")
#: Latencies spread wider than this (slowest / fastest) are drawn on a log axis.
LOG_X_SPREAD = 10.0
#: Where a candidate with an error of exactly 0 is drawn on the log axis (it would vanish otherwise).
ZERO_ERROR = 1e-9


def _is_tune_result(value: Any) -> bool:
    return hasattr(value, "candidates") and hasattr(value, "references") and hasattr(value, "grid")


def _candidates(value: Any) -> list[Any]:
    """The ``CandidateResult``s of a ``TuneResult`` or of a sequence of them."""
    if _is_tune_result(value):
        return list(value.candidates)
    if isinstance(value, (list, tuple)) and all(hasattr(c, "candidate") and hasattr(c, "status") for c in value):
        return list(value)
    raise InvalidInputError(f"Expected a wb.TuneResult (from wb.tune) or a list of its CandidateResults, received "
                            f"{describe(value)}.")


def mean_p50_ms(timings: Sequence[Any]) -> float | None:
    """The mean over shapes of the median latency (ms): a candidate's (or reference's) Pareto x."""
    values = [float(t.p50_ms) for t in timings if t.p50_ms is not None and math.isfinite(float(t.p50_ms))]
    return sum(values) / len(values) if values else None


def _point(c: Any) -> tuple[float, float] | None:
    """``(latency ms, max abs error)`` of a candidate, or None where it has no timing or error."""
    latency = mean_p50_ms(c.timings) if c.timings else None
    error = c.max_abs_error
    if latency is None or error is None or not math.isfinite(float(error)):
        return None
    return latency, max(float(error), ZERO_ERROR)


def pareto_front(candidates: Sequence[Any]) -> list[Any]:
    """The candidates that passed the gate (chosen, passed, or pruned by the search after passing it)
    and that no other such candidate beats on both latency and error, fastest first."""
    points = [(p, c) for c in candidates if c.status in PASSED and (p := _point(c)) is not None]
    front = [c for p, c in points
             if not any(q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1]) for q, _ in points)]
    return sorted(front, key=lambda c: _point(c)[0])  # type: ignore[index]


def _hover(c: Any, latency: float, error: float) -> str:
    cand = c.candidate
    lines = [f"<b>{esc(cand.name)}</b>", f"{esc(c.status)} \u00b7 {esc(cand.precision)}",
             f"latency {latency:.3g} ms (mean p50 over shapes)", f"max |error| {error:.3g}"]
    if getattr(c, "top1_agreement", None) is not None:
        lines.append(f"top-1 agreement {100 * c.top1_agreement:.1f}%")
    if c.size_bytes:
        lines.append(f"{c.size_bytes / 2**20:.2f} MiB")
    why = c.error or getattr(c, "note", None)
    if why:
        lines.append(esc(str(why)[:120]))
    return "<br>".join(lines)


def _reference_lines(fig: go.Figure, references: Sequence[Any], y_range: tuple[float, float]) -> list[str]:
    """A dotted vertical line per reference at its mean p50 (a trace, so it sits right on a log axis too)."""
    drawn = []
    for i, ref in enumerate(references or ()):
        x = mean_p50_ms(ref.timings) if not ref.error else None
        if x is None:
            continue
        fig.add_trace(go.Scatter(x=[x, x], y=list(y_range), mode="lines", name=esc(ref.name), hoverinfo="text",
                                 hovertext=f"{esc(ref.name)}: {x:.3g} ms (mean p50 over shapes)",
                                 line=dict(color=color(i + 3), dash="dot", width=1.5),
                                 meta={"kind": "reference", "name": ref.name}))
        drawn.append(ref.name)
    return drawn


def pareto_figure(result: Any, *, references: Sequence[Any] | None = None, title: str = "Latency vs error") -> go.Figure:
    """Every candidate at (mean p50 latency over the grid's shapes, max |error| against PyTorch), on a
    log error axis, coloured by status (chosen, passed, rejected by the accuracy gate, pruned); the
    Pareto front of the passed ones as a line; each reference (PyTorch eager, torch.compile, torch
    int8) a dotted vertical line at its latency. ``result``: a ``TuneResult`` or the
    ``CandidateResult``s so far (then ``references`` may be given too)."""
    candidates = _candidates(result)
    if references is None and _is_tune_result(result):
        references = result.references
    placed = [(c, p) for c in candidates if (p := _point(c)) is not None]
    if not placed:
        waiting = "No candidate measured yet." if not candidates else (
            f"{len(candidates)} candidate(s), none with both a latency and an error to draw.")
        return empty_figure(title, waiting)
    fig = go.Figure()
    for status in STATUS_ORDER:
        mine = [(c, p) for c, p in placed if c.status == status]
        if not mine:
            continue
        colour, symbol, size = STATUS_STYLE[status]
        fig.add_trace(go.Scatter(
            x=[p[0] for _, p in mine], y=[p[1] for _, p in mine], mode="markers", name=status,
            marker=dict(color=colour, symbol=symbol, size=size, line=dict(width=1, color="white")),
            hovertext=[_hover(c, *p) for c, p in mine], hoverinfo="text",
            customdata=[esc(c.candidate.name) for c, _ in mine], meta={"kind": "candidates", "status": status}))
    front = pareto_front(candidates)
    if len(front) > 1:
        xs, ys = zip(*(_point(c) for c in front))  # type: ignore[misc]
        fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines", name="Pareto front", hoverinfo="skip",
                                 line=dict(color=PASS_COLOR, dash="dash", width=1.5, shape="hv"),
                                 meta={"kind": "front"}))
    ys = [p[1] for _, p in placed]
    low, high = math.floor(math.log10(min(ys))) - 0.2, math.ceil(math.log10(max(ys))) + 0.2
    drawn = _reference_lines(fig, references or (), (10 ** low, 10 ** high))
    xs = [p[0] for _, p in placed] + [x for t in fig.data if t.meta.get("kind") == "reference" for x in t.x]
    wide = min(xs) > 0 and max(xs) / min(xs) > LOG_X_SPREAD  # one slow outlier would squash the rest
    fig.update_xaxes(title="latency (ms, mean p50 over shapes)" + (", log" if wide else ""),
                     **(dict(type="log", dtick="D2") if wide else dict(rangemode="tozero")))
    # Whole decades only, and at least one in view: minor ticks labelled 2..9 crowd a narrow range.
    fig.update_yaxes(title="max |error| vs PyTorch", type="log", exponentformat="power", dtick=1, range=[low, high])
    unplaced = len(candidates) - len(placed)
    subtitle = (f"{len(placed)} candidate(s) drawn" + (f", {unplaced} not (not timed yet, or failed)" if unplaced else "")
                + ": lower left is better" + (f"; dotted: {esc(', '.join(drawn))}" if drawn else ""))
    return layout(fig, title, subtitle=subtitle, height=420)


def _shape_label(shape: tuple[int, int | None]) -> str:
    batch, seq = shape
    return f"{batch}\u00d7{seq}" if seq is not None else f"batch {batch}"


def _speedup_bar(name: str, timings: Sequence[Any], labels: dict[tuple[int, int | None], str], i: int) -> go.Bar | None:
    cells = [(t, t.speedup) for t in timings if t.speedup is not None and (t.batch, t.seq) in labels]
    if not cells:
        return None
    values = [r.value for _, r in cells]
    return go.Bar(
        x=[labels[(t.batch, t.seq)] for t, _ in cells], y=values, name=esc(name),
        error_y=dict(type="data", symmetric=False, array=[r.high - r.value for _, r in cells],
                     arrayminus=[r.value - r.low for _, r in cells], color=MUTED_COLOR, thickness=1.2),
        marker=dict(color=color(i), pattern=dict(shape=["" if r.clear else "/" for _, r in cells])),
        text=[f"{r.value:.2f}\u00d7" for _, r in cells], textposition="outside", meta={"name": name},
        hovertext=[f"{esc(name)} at {labels[(t.batch, t.seq)]}: {esc(str(r))}, {esc(r.verdict)}" for t, r in cells],
        hoverinfo="text")


def tune_speedups_figure(result: Any, *, title: str = "Speed-up over PyTorch eager") -> go.Figure:
    """Per grid shape, the chosen configuration's speed-up over PyTorch eager and that of each other
    reference (torch.compile, torch int8), with the 95% interval of each ratio as error bars; a
    hatched bar's interval contains 1 (no clear difference). Measured interleaved in the same run."""
    if not _is_tune_result(result):
        raise InvalidInputError(f"Expected a wb.TuneResult (from wb.tune), received {describe(result)}.")
    labels = {tuple(shape): _shape_label(tuple(shape)) for shape in result.grid}
    bars = []
    if result.chosen is not None:
        bars.append(_speedup_bar(f"ORT: {result.chosen.candidate.name}", result.chosen.timings, labels, 0))
    for i, ref in enumerate(result.references):
        if ref.name != "eager" and not ref.error:
            bars.append(_speedup_bar(ref.name, ref.timings, labels, i + 3))
    bars = [b for b in bars if b is not None]
    if not bars:
        return empty_figure(title, "No speed-ups to draw: " + esc(result.verdict))
    fig = go.Figure(bars)
    fig.add_hline(y=1.0, line=dict(color=MUTED_COLOR, dash="dash"))
    fig.update_xaxes(title="shape (batch\u00d7seq)", type="category")
    fig.update_yaxes(title="speed-up (\u00d7)", rangemode="tozero")
    return layout(fig, title, subtitle="eager p50 / p50, interleaved in one run; bars: 95% interval; "
                                       "hatched: no clear difference", barmode="group")
