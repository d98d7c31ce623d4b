"""Figures in panels: made on first show, then updated in place (or replaced)."""

from __future__ import annotations

import time

import plotly.graph_objects as go

from workbench.core.sweep import SweepResult, SweepRow
from workbench.viz import latency_figure
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


class FrontEnd:
    """What the browser's plotly holds, from the messages the FigureWidget sends: a new layout is
    merged into the old one (``Plotly.relayout``: a key set to ``None`` is removed, a container
    replaced), so a key Python drops stays in the browser unless it is sent as ``None``."""

    def __init__(self, widget: go.FigureWidget) -> None:
        self.layout = {k: v for k, v in widget._widget_layout.items()}
        widget.observe(self._relayout, names=["_py2js_relayout"])
        widget.observe(self._update, names=["_py2js_update"])

    def _apply(self, data: dict) -> None:
        for key, value in data.items():
            head, _, rest = key.partition(".")
            if rest:
                self.layout.setdefault(head, {})[rest] = value
            elif value is None:
                self.layout.pop(head, None)
            else:
                self.layout[head] = value

    def _relayout(self, change: dict) -> None:
        if change["new"]:
            self._apply(change["new"]["relayout_data"])

    def _update(self, change: dict) -> None:
        if change["new"]:
            self._apply(change["new"]["layout_data"])

    def axes(self) -> set[str]:
        return {k for k in self.layout if k.startswith(("xaxis", "yaxis"))}


def _sweep_with(seqs: tuple[int, ...]) -> SweepResult:
    rows = [SweepRow(config, batch, seq, p50=1e-3 * batch, p90=1e-3, p95=1e-3, p99=1e-3, throughput=1.0)
            for config in ("eager", "CPU/all") for seq in seqs for batch in (1, 2)]
    return SweepResult(rows=rows, total=len(rows))


def test_a_figure_whose_subplots_change_is_redrawn_any_number_of_times() -> None:
    """The second Run of the sweep failed with "Invalid property path 'xaxis2' for layout": its first
    live redraw has one subplot where the last run's figure had two."""
    slot = FigureSlot("latency")
    slot.show(latency_figure(_sweep_with((8, 16))))
    browser = FrontEnd(slot.figure)
    for seqs in [(8,), (8, 16), (8,), (4, 8, 16), (8, 16), (8, 16), (4,), (4, 8, 16)]:
        slot.show(latency_figure(_sweep_with(seqs)), title_suffix="run")
        axes = {f"{xy}axis{n if n > 1 else ''}" for xy in "xy" for n in range(1, len(seqs) + 1)}
        shown = slot.figure.layout.to_plotly_json()
        assert {k for k in shown if k.startswith(("xaxis", "yaxis"))} == axes
        assert browser.axes() == axes, f"the browser keeps stale axes after {seqs}"
        assert [a["text"] for a in shown["annotations"]] == [f"seq = {s}" for s in seqs]
        assert {t.meta["seq"] for t in slot.data} == set(seqs)
