"""The shared pieces: workers, the status line, errors shown."""

from __future__ import annotations

import threading

from workbench.widgets._base import (
    LatestWorker,
    Panel,
    StatusLine,
    Worker,
    clip_at_word,
    clipped_html,
    details_html,
    shows_errors,
    timings_html,
    warnings_html,
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
    assert not worker.cancelled
    worker.cancel()
    assert worker.wait(5) and done == [True] and worker.cancelled
    assert worker.start(lambda cancel: cancel.is_set(), done.append, done.append)  # a new job, a new event
    assert worker.wait(5) and done == [True, False] and not worker.cancelled


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


def test_a_long_cause_is_cut_at_a_word_with_the_full_text_behind_a_toggle() -> None:
    cause = "IndexError: index out of range in self while reading the <embedding> table " * 8
    html = clipped_html(cause, 40)
    shown = html.split("<details")[0]
    assert shown.endswith("\u2026") and shown[:-1] == "IndexError: index out of range in self"
    assert "<details" in html and "full text" in html and "&lt;embedding&gt;" in html and "<embedding>" not in html
    assert clipped_html("short & sweet") == "short &amp; sweet"  # no toggle for a short text
    assert clip_at_word("IndexError: index out of range", 20) == "IndexError: index\u2026"


def test_an_error_in_the_status_line_is_cut_at_a_word() -> None:
    status = StatusLine()
    status.error(RuntimeError("index " + "overflowing " * 60))
    message = status.value.split("wb-error-message")[1]
    head = message.split("<details")[0]
    assert "\u2026" in head and "overflowin\u2026" not in head and "overflowing\u2026" in head
    assert message.count("overflowing") >= 60  # the whole message is in the page, behind a toggle


def test_warnings_and_timings_open_on_a_click() -> None:
    assert warnings_html([]) == ""
    html = warnings_html(["TracerWarning: <converting> a tensor", "UserWarning: second"])
    assert html.startswith("<details") and "2 warnings</summary>" in html
    assert html.count("<li>") == 2 and "&lt;converting&gt;" in html
    assert "1 warning</summary>" in warnings_html(["only one"])
    timings = timings_html({"session": 0.07, "compare": 0.01})
    assert timings.startswith("<details") and "<summary" in timings and "0.07 s" in timings
    assert details_html("more", "<b>body</b>").startswith("<details")
