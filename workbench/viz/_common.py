"""Shared pieces of the figure builders: subsampling, colours, layout, an empty-figure stand-in."""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

import numpy as np
import plotly.graph_objects as go

from workbench.errors import InvalidInputError, describe

T = TypeVar("T")

#: The most points a scatter draws; larger arrays are subsampled (the worst point always kept).
MAX_POINTS = 5000
PASS_COLOR = "#1a7f37"
FAIL_COLOR = "#cf222e"
MUTED_COLOR = "#6e7781"
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                            "#7f7f7f", "#bcbd22", "#17becf")
TEMPLATE = "plotly_white"


def expect(value: Any, kind: type[T], what: str) -> T:
    """``value`` if it is a ``kind``; else ``InvalidInputError`` saying what a figure takes."""
    if not isinstance(value, kind):
        raise InvalidInputError(f"Expected {what}, received {describe(value)}.")
    return value


def positive_int(value: Any, name: str) -> int:
    """``value`` if it is an int >= 1 (a figure's ``top``, ``bins``, ``max_points``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int >= 1, received {value!r}.")
    return value


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def subsample(n: int, max_points: int, *, keep: Sequence[int] = (), seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` items, chosen at random (seeded) but
    always holding the indices in ``keep`` (e.g. the worst element)."""
    positive_int(max_points, "max_points")
    if n <= max_points:
        return np.arange(n)
    kept = np.unique(np.asarray([k for k in keep if 0 <= k < n], dtype=np.int64))[:max_points]
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(n), kept, assume_unique=True)
    extra = rng.choice(pool, size=max_points - len(kept), replace=False)
    return np.sort(np.concatenate([kept, extra]))


def finite_or_nan(values: Sequence[float]) -> list[float]:
    """Values with inf replaced by NaN (plotly cannot draw inf; NaN leaves a gap)."""
    return [float(v) if v is not None and np.isfinite(v) else float("nan") for v in values]


def ms(seconds: float) -> float:
    return float(seconds) * 1e3


#: The plot titles' font size (px); a title stays short enough for a figure at half the width of a
#: 1000 px page (~460 px): the details go into the subtitle.
TITLE_SIZE = 17
SUBTITLE_SIZE = 12


def layout(fig: go.Figure, title: str, *, subtitle: str = "", height: int = 420, panels: int = 0,
           **kwargs: object) -> go.Figure:
    """Title (short) and subtitle (the details), margins, and the legend below the x-axis title.

    ``panels``: the lines of the subplot titles, which need room under the subtitle.

    The legend is placed at the bottom of the figure (``yref="container"``), so plotly grows the
    bottom margin to fit it under the axis title instead of drawing it over the title, at any width.
    """
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=14),
                   font=dict(size=TITLE_SIZE),
                   subtitle=dict(text=subtitle, font=dict(size=SUBTITLE_SIZE, color=MUTED_COLOR))),
        height=height, margin=dict(l=64, r=24, t=_top_margin(subtitle, panels), b=48),
        legend=dict(orientation="h", x=0, xanchor="left", xref="container", y=0, yanchor="bottom",
                    yref="container", entrywidthmode="pixels"),
        **kwargs)
    _set_template(fig, TEMPLATE)
    return fig


def _top_margin(subtitle: str, panels: int) -> int:
    lines = subtitle.count("<br>") + 1 if subtitle else 0
    return 52 + 18 * lines + 20 * panels


def count_axis(top: float, *, log: bool = False) -> dict[str, Any]:
    """Axis settings for counts (nodes, values): ticks on whole numbers only, never 1.5 or 2.5.

    On a log axis: every whole number below 10 (plotly's ``"D1"``), 1, 2, 5, 10, 20, 50 below 100
    (``"D2"``), else the powers of ten; on a linear axis a whole-number step of 1, 2 or 5 times a
    power of ten.
    """
    if log:
        return dict(type="log", dtick="D1" if top < 10 else "D2" if top < 100 else 1, tickformat="d")
    k, step = 0, 1
    while top / step > 8:  # at most 8 ticks: steps 1, 2, 5, 10, 20, 50...
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)
    return dict(tick0=0, dtick=step, tickformat="d", rangemode="tozero")


def _set_template(fig: go.Figure, name: str) -> None:
    """Apply a registered plotly template without validating it again, as plotly does for its
    default template: validation copies the whole template (~0.1 s a figure, most of the cost of
    a live redraw)."""
    import plotly.io as pio

    validate = fig.layout._validate
    fig.layout._validate = False
    try:
        fig.layout.template = pio.templates[name]
    finally:
        fig.layout._validate = validate


def empty_figure(title: str, message: str) -> go.Figure:
    """A figure with no data and ``message`` in the middle (nothing to plot is a result too)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color=MUTED_COLOR))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return layout(fig, title, height=260)
