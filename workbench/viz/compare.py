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
    count_axis,
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


#: Which bound an element passes by: codes, names, colours. An element passes where
#: ``|actual - expected| <= atol + rtol * |expected|`` (``numpy.isclose``): within ``atol`` alone, or
#: only with the relative part added; else it fails.
WITHIN_ATOL, WITHIN_RTOL, FAILS = 0, 1, 2
BOUNDS: dict[int, tuple[str, str]] = {
    WITHIN_ATOL: ("within atol", PASS_COLOR),
    WITHIN_RTOL: ("within atol + rtol\u00b7|expected|", "#0969da"),
    FAILS: ("fails", FAIL_COLOR),
}
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")


def _pairs(diffs: list[OutputDiff]) -> tuple[np.ndarray, np.ndarray]:
    """Expected and actual values of one output over all samples, flat, as float64, finite pairs only."""
    usable = [d for d in diffs if d.shape_mismatch is None and d.total]
    if not usable:
        return np.zeros(0), np.zeros(0)
    e = np.concatenate([np.asarray(d.expected, dtype=np.float64).reshape(-1) for d in usable])
    a = np.concatenate([np.asarray(d.actual, dtype=np.float64).reshape(-1) for d in usable])
    keep = np.isfinite(e) & np.isfinite(a)
    return e[keep], a[keep]


def bounds(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Per element: ``WITHIN_ATOL``, ``WITHIN_RTOL`` (passes only with ``rtol * |expected|`` added) or ``FAILS``."""
    err = np.abs(actual - expected)
    return np.where(err <= atol, WITHIN_ATOL, np.where(err <= atol + rtol * np.abs(expected), WITHIN_RTOL, FAILS))


def bounds_key(counts: dict[int, int]) -> str:
    """The colour key of the bounds with their counts, as plotly text (for a subtitle)."""
    return " ".join(f"<span style='color:{colour}'>\u25cf</span> {name} {counts.get(code, 0):,}"
                    for code, (name, colour) in BOUNDS.items())


def _shown_points(e: np.ndarray, a: np.ndarray, code: np.ndarray, share: int) -> np.ndarray:
    """Indices to draw: a subsample that keeps the worst element and, up to half the share, the
    elements beyond atol (the ones a reader looks for)."""
    beyond = np.flatnonzero(code != WITHIN_ATOL)
    if beyond.size > share // 2:
        beyond = beyond[np.linspace(0, beyond.size - 1, share // 2).astype(np.int64)]
    return subsample(e.size, share, keep=[int(np.argmax(np.abs(a - e))), *beyond.tolist()])


def values_scatter(comparison: Comparison, *, max_points: int = MAX_POINTS) -> go.Figure:
    """ORT's value (y) against PyTorch's (x) for every output, with the line y = x; each point
    coloured by the bound it passes by (``BOUNDS``: within atol, within atol + rtol·|expected|,
    fails), the counts over all elements in the subtitle. Outputs differ by marker symbol.

    At most ``max_points`` points are drawn in all, shared evenly among the outputs (a seeded
    random subsample that always keeps each output's largest error and shows elements beyond atol).
    """
    expect(comparison, Comparison, _WHAT)
    positive_int(max_points, "max_points")
    groups = {name: _pairs(diffs) for name, diffs in _by_output(comparison).items()}
    groups = {name: pair for name, pair in groups.items() if pair[0].size}
    title = "PyTorch vs ONNX Runtime"
    if not groups:
        return empty_figure(title, "No comparable values (shape mismatches or empty outputs).")
    share = max(1, max_points // len(groups))
    fig = go.Figure()
    lo, hi = np.inf, -np.inf
    counts: dict[int, int] = {}
    names = [BOUNDS[c][0] for c in sorted(BOUNDS)]
    for i, (name, (e, a)) in enumerate(groups.items()):
        code = bounds(e, a, comparison.rtol, comparison.atol)
        for c, n in zip(*np.unique(code, return_counts=True)):
            counts[int(c)] = counts.get(int(c), 0) + int(n)
        idx = _shown_points(e, a, code, share)
        x, y = e[idx], a[idx]
        lo, hi = min(lo, float(x.min()), float(y.min())), max(hi, float(x.max()), float(y.max()))
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="markers", name=f"{name} ({len(idx)} of {e.size})", meta={"output": name},
            marker=dict(size=5, opacity=0.7, color=[BOUNDS[int(c)][1] for c in code[idx]],
                        symbol=_SYMBOLS[i % len(_SYMBOLS)]),
            customdata=[names[int(c)] for c in code[idx]],
            hovertemplate="PyTorch %{x:.6g}<br>ORT %{y:.6g}<br>%{customdata}<extra>" + name + "</extra>",
        ))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", meta={"output": None},
                             line=dict(color=MUTED_COLOR, dash="dash", width=1), hoverinfo="skip"))
    fig.update_xaxes(title="PyTorch (expected)")
    fig.update_yaxes(title="ONNX Runtime (actual)")
    return layout(fig, title, subtitle=f"{_tolerance_text(comparison)}<br>{bounds_key(counts)}")


def _tolerance_text(comparison: Comparison) -> str:
    return f"{comparison.tolerance}: atol {comparison.atol:g}, rtol {comparison.rtol:g}"


def error_histogram(comparison: Comparison, *, bins: int = 50) -> go.Figure:
    """Histogram of |ORT - PyTorch| per output on a log count axis (whole-number ticks), with
    ``atol`` marked where it falls inside the range (a note says so when every error is below it);
    the subtitle counts the elements beyond atol and how many of them ``rtol`` covers.

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
    title = "Absolute error |ORT - PyTorch|"
    if not errors:
        return empty_figure(title, "No finite errors to show.")
    top = max(float(v.max()) for v in errors.values())
    edges = np.linspace(0.0, top * (1 + 1e-9) if top > 0 else 1e-12, bins + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    fig = go.Figure()
    most = 1
    for i, (name, values) in enumerate(errors.items()):
        counts, _ = np.histogram(values, bins=edges)
        most = max(most, int(counts.max()))
        fig.add_trace(go.Bar(x=centers, y=counts, width=width, name=name, meta={"output": name},
                             marker=dict(color=color(i)), opacity=0.75,
                             hovertemplate="|error| ~ %{x:.3g}<br>%{y} values<extra>" + name + "</extra>"))
    inside = comparison.atol <= edges[-1] * 1.05
    if inside:
        fig.add_vline(x=comparison.atol, line=dict(color=FAIL_COLOR, dash="dash"), annotation_text="atol")
    # Where atol is off the axis the subtitle says so (a note inside the plot covered the top tick).
    below = "" if inside else (f" <span style='color:{PASS_COLOR}'>(largest {top:.3g} &lt; atol "
                               f"{comparison.atol:g})</span>")
    fig.update_xaxes(title="absolute error")
    fig.update_yaxes(title="count (log)", **count_axis(most, log=True))
    return layout(fig, title, subtitle=f"{_tolerance_text(comparison)}<br>{_beyond_atol_text(comparison)}{below}",
                  barmode="overlay", bargap=0, showlegend=len(errors) > 1)


def _beyond_atol_text(comparison: Comparison) -> str:
    beyond = rtol_covers = 0
    for d in comparison.outputs:
        if d.shape_mismatch is None and d.total:
            e = np.abs(np.asarray(d.expected, dtype=np.float64).reshape(-1))
            err = np.asarray(d.abs_errors, dtype=np.float64).reshape(-1)
            over = err > comparison.atol
            beyond += int(over.sum())
            rtol_covers += int((over & (err <= comparison.atol + comparison.rtol * e)).sum())
    if not beyond:
        return "every error within atol"
    return f"{beyond:,} beyond atol, {rtol_covers:,} of them within atol + rtol\u00b7|expected|"


def _rel_beyond_atol(diffs: list[OutputDiff], atol: float) -> float | None:
    """The largest relative error among the elements whose |error| is over ``atol`` (the ones the
    relative part of the tolerance must cover); None when every element is within atol."""
    worst: float | None = None
    for d in diffs:
        if d.shape_mismatch is not None or not d.total:
            continue
        err = np.asarray(d.abs_errors, dtype=np.float64).reshape(-1)
        e = np.abs(np.asarray(d.expected, dtype=np.float64).reshape(-1))
        over = err > atol
        if over.any():
            rel = float(np.max(err[over] / np.maximum(e[over], np.finfo(np.float64).tiny)))
            worst = rel if worst is None else max(worst, rel)
    return worst


def error_bars(comparison: Comparison) -> go.Figure:
    """Max absolute error per output with ``atol`` (left), and max relative error with ``rtol``
    (right): of all elements (grey) and of the elements beyond atol, the only ones ``rtol`` judges.
    A relative error far above rtol passes where its |error| is within atol (a tiny expected value);
    the grey bar shows it, the coloured one does not. Red where the output failed in some sample."""
    expect(comparison, Comparison, _WHAT)
    groups = _by_output(comparison)
    names = list(groups)
    max_abs = [max(d.max_abs for d in diffs) for diffs in groups.values()]
    max_rel = [max(d.max_rel for d in diffs) for diffs in groups.values()]
    beyond = [_rel_beyond_atol(diffs, comparison.atol) for diffs in groups.values()]
    colors = [PASS_COLOR if all(d.ok for d in diffs) else FAIL_COLOR for diffs in groups.values()]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        f"max |error|<br>dashed: atol {comparison.atol:g}", f"max relative error<br>dashed: rtol {comparison.rtol:g}"))
    fig.update_annotations(font_size=13)
    series = (("max_abs", "max |error|", max_abs, dict(color=colors), 1),
              ("max_rel", "all elements", max_rel, dict(color=MUTED_COLOR), 2),
              ("max_rel_beyond_atol", "elements beyond atol", beyond, dict(color=colors), 2))
    for metric, name, values, marker, col in series:
        shown = [v if v is not None and np.isfinite(v) else None for v in values]
        text = [_bar_text(v) for v in values]
        fig.add_trace(go.Bar(x=names, y=shown, name=name, marker=marker, text=text, meta={"metric": metric},
                             textposition="auto", textfont_size=11, cliponaxis=False, showlegend=col == 2),
                      row=1, col=col)
    for col, (tol, values) in enumerate(((comparison.atol, max_abs), (comparison.rtol, max_rel + beyond)), start=1):
        fig.add_hline(y=tol, line=dict(color=MUTED_COLOR, dash="dash"), row=1, col=col)
        span = _log_range([*values, tol])
        fig.update_yaxes(range=span, dtick=decade_step(span), row=1, col=col)
    # Labels on powers of ten only: plotly's 2 and 5 between them crowded a narrow panel.
    fig.update_yaxes(type="log", exponentformat="power")
    return layout(fig, "Worst error per output", subtitle=_tolerance_text(comparison) + _bars_note(comparison, max_rel,
                  beyond, colors), barmode="group", panels=2)


def _bars_note(comparison: Comparison, max_rel: list[float], beyond: list[float | None], colors: list[str]) -> str:
    """Why a relative error above rtol can pass, where the figure shows one."""
    if all(b is None for b in beyond):
        return "<br>every |error| is within atol: rtol judges no element"
    if any(np.isfinite(r) and r > comparison.rtol and c == PASS_COLOR for r, c in zip(max_rel, colors)):
        return "<br>a relative error above rtol passes where |error| \u2264 atol (grey bar)"
    return ""


def _log_range(values: list[float | None]) -> list[float] | None:
    """A log axis' range (in decades) from a decade below the smallest bar to above the largest:
    bars grow from the bottom of a log axis, so its bottom must sit well under them to compare
    their heights with the tolerance line."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v) and v > 0]
    if not finite:
        return None
    return [float(np.floor(np.log10(min(finite)))) - 0.5, float(np.log10(max(finite))) + 0.3]


def decade_step(span: list[float] | None, *, most: int = 6) -> int:
    """A log axis' tick step in decades: every power of ten, or every 2nd, 3rd... so that at most
    ``most`` labels show over ``span`` (a range in decades); 1 without a range."""
    if not span:
        return 1
    return max(1, int(np.ceil((span[1] - span[0]) / most)))


def _bar_text(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:.2g}" if np.isfinite(value) else "inf (shape mismatch)"
