"""The shared pieces: workers, the status line, errors shown."""

from __future__ import annotations

import threading

from workbench.widgets._base import LatestWorker, Panel, StatusLine, Worker, shows_errors


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
