"""Figures in panels: made on first show, then updated in place (or replaced)."""

from __future__ import annotations

import time

import plotly.graph_objects as go

from workbench.widgets._figures import FigureSlot, figure_widget, show_figure


def test_show_figure_updates_in_place_or_replaces() -> None:
    target = figure_widget()
    assert target._config["responsive"]
    first = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="a"))
    first.update_layout(title_text="T", template="plotly_white")
    first.add_hline(y=1)
    show_figure(target, first, title_suffix="CPU/all")
    uid = target.data[0].uid
    assert target.layout.title.text == "T \u00b7 CPU/all" and len(target.layout.shapes) == 1

    second = go.Figure(go.Scatter(x=[5, 6], y=[7, 8], name="a"))
    second.update_layout(title_text="T", template="plotly_white")
    second.add_hline(y=2)
    start = time.perf_counter()
    show_figure(target, second, title_suffix="CPU/basic")
    assert time.perf_counter() - start < 1
    assert target.data[0].uid == uid and tuple(target.data[0].x) == (5, 6)  # restyled, not replaced
    assert target.layout.shapes[0].y0 == 2 and target.layout.title.text == "T \u00b7 CPU/basic"

    third = go.Figure([go.Bar(x=["a"], y=[1]), go.Bar(x=["b"], y=[2])])
    third.update_layout(title_text="U", template="plotly_white")
    show_figure(target, third)
    assert [t.type for t in target.data] == ["bar", "bar"] and target.layout.shapes == ()


def test_figure_slot_makes_its_widget_on_first_show() -> None:
    slot = FigureSlot("x", width="50%")
    assert slot.figure is None and slot.children == () and slot.data == ()
    slot.show(go.Figure(go.Scatter(x=[1], y=[2]), layout=dict(title_text="A")), title_suffix="s")
    widget = slot.figure
    assert isinstance(widget, go.FigureWidget) and slot.children == (widget,)
    assert widget.layout.title.text == "A \u00b7 s" and widget._config["responsive"]
    slot.show(go.Figure(go.Scatter(x=[3], y=[4]), layout=dict(title_text="A")))
    assert slot.figure is widget and tuple(slot.data[0].x) == (3,)
