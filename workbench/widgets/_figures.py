"""Figures in panels: a plotly ``FigureWidget`` made on first use and redrawn in place, and the
helper that fits figures to their panel once it is shown."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import plotly.graph_objects as go


def show_figure(target: go.FigureWidget, figure: go.Figure, *, title_suffix: str = "") -> None:
    """Make ``target`` show ``figure``'s traces and layout, as often as asked, whatever changed.

    A redraw of the same kind of figure (same trace types and keys, same layout keys and template)
    is sent as one ``Plotly.update`` (restyle + relayout in one batch): the browser draws once, and
    plotly's template is not validated again (~60 ms a figure). Any other figure (other traces,
    more or fewer subplots) replaces the traces and the layout; the layout keys the shown one has
    and the new one lacks (``xaxis2`` when two subplots become one) are removed first, while the
    widget still has them: the browser merges a new layout into the old one and would keep them.
    """
    _add_title_suffix(figure, title_suffix)
    new_layout = figure.layout.to_plotly_json()
    old_layout: dict[str, Any] | None = getattr(target, "_wb_layout", None)
    new_traces = [t.to_plotly_json() for t in figure.data]
    old_traces: list[dict[str, Any]] = getattr(target, "_wb_traces", [])
    same_layout = (old_layout is not None and set(old_layout) == set(new_layout)
                   and old_layout.get("template") == new_layout.get("template"))
    same_traces = (same_layout and len(old_traces) == len(new_traces) == len(target.data)
                   and all(o.get("type") == n.get("type") and set(o) == set(n) for o, n in zip(old_traces, new_traces)))
    if same_traces:
        with target.batch_update():
            for trace, values in zip(target.data, new_traces):
                trace.update({k: v for k, v in values.items() if k not in ("type", "uid")}, overwrite=True)
            for key, value in new_layout.items():
                if old_layout[key] != value:  # type: ignore[index]
                    target.layout[key] = value
    else:
        _replace(target, figure, new_layout)
    target._wb_layout = new_layout
    target._wb_traces = new_traces


def _replace(target: go.FigureWidget, figure: go.Figure, new_layout: dict[str, Any]) -> None:
    """New traces and a new layout; the keys of the shown layout that the new one lacks removed
    before it is set (after, plotly refuses them: "Invalid property path 'xaxis2' for layout")."""
    shown = set(target.layout.to_plotly_json())
    stale = {key: None for key in shown - set(new_layout) if key != "template"}
    with target.batch_update():
        target.data = ()
        if stale:
            target.plotly_relayout(stale)
        target.add_traces(list(figure.data))
        target.layout = figure.layout


def _add_title_suffix(figure: go.Figure, suffix: str) -> None:
    if suffix and figure.layout.title.text:
        figure.layout.title.text = f"{figure.layout.title.text} \u00b7 {suffix}"


def figure_widget(figure: go.Figure | None = None, *, title_suffix: str = "") -> go.FigureWidget:
    """A FigureWidget showing ``figure``, sized to its container (see ``ResizeNudge``), ready for
    ``show_figure`` to redraw it in place."""
    figure = figure if figure is not None else go.Figure(layout=dict(template="plotly_white", height=380))
    _add_title_suffix(figure, title_suffix)
    widget = go.FigureWidget(figure)
    widget._config = {"responsive": True, "displaylogo": False}
    widget._wb_layout = figure.layout.to_plotly_json()
    widget._wb_traces = [t.to_plotly_json() for t in figure.data]
    return widget


#: One figure change at a time in the process: FigureWidgets opened by two threads at once were seen
#: to reach the browser empty (plotly's widget sends its state in several messages).
_FIGURES = threading.RLock()


class FigureSlot(widgets.VBox):
    """The place of one plotly ``FigureWidget`` in a panel, made on the first ``show``.

    Each FigureWidget carries plotly's whole front end (~5 MB of JavaScript) in its widget state;
    a panel with nothing to plot yet sends none of it, so a dashboard appears at once. A VBox, so
    the figure is stretched to the slot's width (in a row box it would keep plotly's 700 px).
    """

    def __init__(self, name: str, *, width: str = "100%") -> None:
        super().__init__(layout=widgets.Layout(width=width, min_width="0"))
        self.add_class("wb-figure")
        self.add_class(f"wb-figure-{name}")
        self.figure: go.FigureWidget | None = None

    @property
    def data(self) -> tuple[Any, ...]:
        """The traces shown (none before the first ``show``)."""
        return self.figure.data if self.figure is not None else ()

    def show(self, figure: go.Figure, *, title_suffix: str = "") -> None:
        """Show ``figure``: a new FigureWidget the first time, then ``show_figure`` in place."""
        with _FIGURES:
            if self.figure is None:
                self.figure = figure_widget(figure, title_suffix=title_suffix)
                self.children = (self.figure,)
            else:
                show_figure(self.figure, figure, title_suffix=title_suffix)


class ResizeNudge(anywidget.AnyWidget):
    """Invisible; put one in a panel with figures so they fit the panel once its tab is shown."""

    # The text, not the Path: anywidget's file watcher would hold every instance for good.
    _esm = Path(__file__).with_name("resize.js").read_text(encoding="utf-8")
