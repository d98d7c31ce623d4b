"""The shared pieces: workers, the status line, errors shown, figures updated in place."""

from __future__ import annotations

import threading
import time

import plotly.graph_objects as go

from workbench.widgets._base import (
    FigureSlot,
    LatestWorker,
    Panel,
    StatusLine,
    Worker,
    figure_widget,
    show_figure,
    shows_errors,
)


def test_worker_runs_off_the_main_thread_and_reports_errors() -> None:
    worker: Worker[str] = Worker("test-worker")
    seen: list[object] = []
    assert worker.start(lambda cancel: threading.current_thread().name, seen.append, seen.append)
    assert worker.wait(5) and seen == ["test-worker"]
    assert worker.start(lambda cancel: 1 / 0, seen.append, seen.append)
    assert worker.wait(5) and isinstance(seen[-1], ZeroDivisionError)


def test_worker_refuses_a_second_job_and_cancels() -> None:
    worker: Worker[bool] = Worker("test-worker")
    started = threading.Event()
    done: list[bool] = []

    def job(cancel: threading.Event) -> bool:
        started.set()
        return cancel.wait(5)

    assert worker.start(job, done.append, done.append)
    started.wait(5)
    assert not worker.start(job, done.append, done.append)
    worker.cancel()
    assert worker.wait(5) and done == [True]


def test_latest_worker_shows_only_the_newest() -> None:
    worker: LatestWorker[int] = LatestWorker("test-latest")
    gate = threading.Event()
    shown: list[int] = []

    def job(n: int) -> int:
        gate.wait(5)
        return n

    for n in range(5):
        worker.submit(lambda n=n: job(n), shown.append, shown.append)
    gate.set()
    assert worker.wait(5)
    assert shown == [4]  # the first run was superseded, the middle ones never ran


def test_errors_in_handlers_are_shown_in_the_panel() -> None:
    class Broken(Panel):
        @shows_errors
        def click(self) -> None:
            raise ValueError("bad value: 3")

    panel = Broken()
    panel.click()
    assert panel.state == "failed" and panel.error == "ValueError: bad value: 3"
    assert "bad value: 3" in panel.status.value and "Traceback" in panel.status.value
    assert "wb-status-failed" in panel.status._dom_classes


def test_status_line_escapes_text() -> None:
    status = StatusLine()
    status.error(RuntimeError("<script>alert(1)</script>"))
    assert "<script>" not in status.value and "&lt;script&gt;" in status.value


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
