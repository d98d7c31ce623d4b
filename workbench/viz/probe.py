"""Figure of a ``ProbeReport``: the status of every probed shape, as a grid over the dynamic axes."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from workbench.core._format import esc
from workbench.core.probe import ProbeCase, ProbeReport
from workbench.errors import brief
from workbench.viz._common import FAIL_COLOR, MUTED_COLOR, PASS_COLOR, expect, layout

#: Status -> (code on the colour scale, colour).
STATUS_CODES: dict[str, tuple[int, str]] = {
    "match": (0, PASS_COLOR), "mismatch": (1, "#d4a72c"), "ort_failed": (2, FAIL_COLOR), "torch_failed": (3, MUTED_COLOR),
}


def _colorscale() -> list[list[Any]]:
    n = len(STATUS_CODES)
    scale: list[list[Any]] = []
    for code, colour in STATUS_CODES.values():
        scale += [[code / n, colour], [(code + 1) / n, colour]]
    return scale


def _message(case: ProbeCase) -> str:
    """The case's message, short and escaped (plotly draws some HTML in labels)."""
    return esc(brief(case.message, 200)) if case.message else ""


def _hover(case: ProbeCase) -> str:
    err = f"<br>max abs {case.max_abs:.3g}" if case.max_abs is not None else ""
    msg = f"<br>{_message(case)}" if case.message else ""
    return f"{esc(case.label)}<br>{case.status}{err}{msg}"


def _table(report: ProbeReport, title: str, subtitle: str) -> go.Figure:
    cols = [[esc(c.label) for c in report.cases], [c.status for c in report.cases],
            [f"{c.max_abs:.3g}" if c.max_abs is not None else "" for c in report.cases],
            [_message(c) for c in report.cases]]
    fill = [[STATUS_CODES[c.status][1] for c in report.cases]]
    fig = go.Figure(go.Table(header=dict(values=["sizes", "status", "max abs", "message"]),
                             cells=dict(values=cols, fill=dict(color=["white", *fill, "white", "white"]))))
    return layout(fig, title, subtitle=subtitle, height=max(260, 28 * len(report.cases) + 140))


def probe_figure(report: ProbeReport) -> go.Figure:
    """A heatmap of status per probed shape: rows are sizes of the first dynamic axis, columns of
    the second (one row for a single axis); green match, yellow mismatch, red ORT failed, grey
    PyTorch failed. With more than two axes, a table of the cases instead."""
    expect(report, ProbeReport, "a wb.ProbeReport (from wb.probe_shapes)")
    title = "Shape probes: " + ("all match" if report.ok else f"{len(report.failures)} of {len(report.cases)} failing")
    subtitle = f"over {', '.join(report.symbols) or 'no dynamic axis'} at {report.tolerance}"
    if len(report.symbols) > 2 or not report.symbols:
        return _table(report, title, subtitle)
    row_sym = report.symbols[0]
    col_sym = report.symbols[1] if len(report.symbols) > 1 else None
    ys = sorted({c.sizes[row_sym] for c in report.cases})
    xs = sorted({c.sizes[col_sym] for c in report.cases}) if col_sym else [0]
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    text: list[list[str]] = [[""] * len(xs) for _ in ys]
    hover: list[list[str]] = [["not probed"] * len(xs) for _ in ys]
    for case in report.cases:
        i, j = ys.index(case.sizes[row_sym]), xs.index(case.sizes[col_sym]) if col_sym else 0
        z[i][j] = STATUS_CODES[case.status][0]
        text[i][j] = case.status.replace("_", " ")
        hover[i][j] = _hover(case)
    fig = go.Figure(go.Heatmap(
        x=[str(x) for x in xs] if col_sym else [row_sym], y=[str(y) for y in ys], z=z, text=text, customdata=hover,
        texttemplate="%{text}", hovertemplate="%{customdata}<extra></extra>", colorscale=_colorscale(),
        zmin=-0.5, zmax=len(STATUS_CODES) - 0.5, showscale=False, xgap=2, ygap=2,
    ))
    fig.update_xaxes(title=col_sym or "", type="category")
    fig.update_yaxes(title=row_sym, type="category")
    return layout(fig, title, subtitle=subtitle, height=max(260, 40 * len(ys) + 160))
