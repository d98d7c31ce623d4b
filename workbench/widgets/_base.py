"""Pieces every panel uses: a background worker with cancel, a status line that shows errors
inside the widget (JupyterLab shows callback output nowhere), and the ``Panel`` base class."""

from __future__ import annotations

import functools
import threading
import time
import traceback
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

import ipywidgets as widgets
import traitlets

from workbench.core._format import esc
from workbench.core.cancel import is_cancelled

T = TypeVar("T")

STATES = ["idle", "running", "done", "failed", "cancelled"]
_COLORS = {"idle": "#6e7781", "running": "#0969da", "done": "#1a7f37", "failed": "#cf222e", "cancelled": "#9a6700"}
_BOX = ("padding: 6px 10px; border-radius: 4px; border-left: 4px solid {color}; "
        "background: {bg}; margin: 4px 0; font-size: 13px; line-height: 1.4;")
_BACKGROUNDS = {"idle": "transparent", "running": "#ddf4ff", "done": "#dafbe1", "failed": "#ffebe9",
                "cancelled": "#fff8c5"}
SPINNER = ("<style>@keyframes wb-spin {to {transform: rotate(360deg);}}</style>"
           "<span style='display:inline-block;width:12px;height:12px;border:2px solid #0969da;"
           "border-right-color:transparent;border-radius:50%;animation:wb-spin .8s linear infinite;"
           "vertical-align:-2px;margin-right:6px'></span>")


#: Characters of a message shown before it is cut (at a word) with its full text behind a toggle.
CLIP_CHARS = 240


def details_html(summary: str, body: str, *, css_class: str = "") -> str:
    """A ``<details>`` toggle: ``summary`` (HTML) shown, ``body`` (HTML) after a click."""
    cls = f" class='{css_class}'" if css_class else ""
    return (f"<details{cls} style='margin: 2px 0;'><summary style='cursor: pointer; color: #57606a;'>{summary}"
            f"</summary>{body}</details>")


def clipped_html(text: str, limit: int = CLIP_CHARS) -> str:
    """Plain ``text`` (escaped here): whole when short, else cut at a word with an ellipsis and the
    full text behind a "full text" toggle. Never cut mid-word ("IndexError: index o\u2026")."""
    text = str(text)
    line = " ".join(text.split())
    if len(line) <= limit and "\n" not in text.strip():
        return esc(line)
    return (f"{esc(clip_at_word(line, limit))}"
            + details_html("full text", f"<pre class='wb-full-text' style='white-space: pre-wrap; margin: 2px 0;'>"
                                        f"{esc(text)}</pre>", css_class="wb-full-text-toggle"))


def clip_at_word(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at the last space before it, with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: max(1, limit - 1)]
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head).rstrip(" ,;:.") + "\u2026"


def warnings_html(warnings: Sequence[str], *, what: str = "warning") -> str:
    """``"2 warnings"`` that opens to the list of them (each escaped and clipped); ``""`` for none."""
    items = [str(w) for w in warnings if str(w).strip()]
    if not items:
        return ""
    head = f"{len(items)} {what}{'s' if len(items) != 1 else ''}"
    body = "<ul style='margin: 2px 0; padding-left: 18px;'>" + "".join(
        f"<li>{clipped_html(w)}</li>" for w in items) + "</ul>"
    return details_html(head, body, css_class="wb-warnings")


def timings_html(timings: Mapping[str, float], *, summary: str = "timings") -> str:
    """Seconds per step behind a toggle (the status says what the user needs; this is for the curious)."""
    rows = "".join(f"<tr><td style='padding: 0 8px 0 0;'>{esc(k)}</td><td style='text-align: right;'>{v:.2f} s</td></tr>"
                   for k, v in timings.items())
    return details_html(summary, f"<table style='font-size: 12px;'>{rows}</table>", css_class="wb-timings")


def error_html(exc: BaseException, *, title: str | None = None, details: str = "") -> str:
    """An exception as HTML: its type and message (a long one cut at a word, the full text a click
    away), what the widget adds, and the traceback folded."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    head = esc(title or f"{type(exc).__name__}")
    return (f"<b>{head}</b><div class='wb-error-message' style='white-space: pre-wrap; margin: 4px 0; "
            f"font-family: var(--jp-code-font-family, monospace);'>{clipped_html(f'{type(exc).__name__}: {exc}')}"
            f"</div>{details}"
            + details_html("Traceback", f"<pre style='white-space: pre-wrap; font-size: 11px;'>{esc(tb)}</pre>"))


class StatusLine(widgets.HTML):
    """One line (or box) saying what the panel is doing, what it did, or what went wrong."""

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("wb-status")
        self.state = "idle"
        self.show("idle", text)

    def show(self, state: str, body: str) -> None:
        """Show ``body`` (HTML) styled for ``state`` (one of ``STATES``)."""
        for s in STATES:
            self.remove_class(f"wb-status-{s}")
        self.add_class(f"wb-status-{state}")
        self.state = state
        style = _BOX.format(color=_COLORS.get(state, "#6e7781"), bg=_BACKGROUNDS.get(state, "transparent"))
        self.value = f"<div class='wb-status-box' data-state='{state}' style='{style}'>{body}</div>" if body else ""

    def error(self, exc: BaseException, *, title: str | None = None, details: str = "") -> None:
        self.show("failed", error_html(exc, title=title, details=details))


def shows_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a handler of a panel with a ``status`` StatusLine: an exception is shown there
    (and in ``self.state``/``self.error``) instead of vanishing into JupyterLab's log."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # shown in the widget: a callback's traceback is lost otherwise
            self._fail(exc)
            return None

    return wrapper


class Worker(Generic[T]):
    """Runs one job at a time on a daemon thread, with a cancel ``Event`` (a core ``Cancel``).

    ``start(job, on_done, on_error)`` calls ``job(cancel_event)`` off the kernel's main thread;
    then ``on_done(result)`` or ``on_error(exc)`` on that thread too (widget traits may be set from
    it in ipykernel). ``tick(elapsed_s)`` is called every ``tick_s`` while the job runs.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.cancel_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        """Whether the last job was cancelled."""
        return is_cancelled(self.cancel_event)

    def start(self, job: Callable[[threading.Event], T], on_done: Callable[[T], None],
              on_error: Callable[[BaseException], None], *, tick: Callable[[float], None] | None = None,
              tick_s: float = 0.5) -> bool:
        """Start ``job``; ``False`` (and nothing started) if one is running already."""
        with self._lock:
            if self.running:
                return False
            self.cancel_event = cancel = threading.Event()
            done = threading.Event()

            def run() -> None:
                try:
                    result = job(cancel)
                except BaseException as exc:  # noqa: BLE001 - reported in the widget, never lost
                    done.set()
                    _safely(on_error, exc)
                else:
                    done.set()
                    _safely(on_done, result, on_error)

            if tick is not None:
                _start_ticker(f"{self.name}-tick", tick, tick_s, done)
            self._thread = threading.Thread(target=run, name=self.name, daemon=True)
            self._thread.start()
            return True

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job (and its callbacks) finished; ``False`` on timeout."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()


def _start_ticker(name: str, tick: Callable[[float], None], tick_s: float, done: threading.Event) -> None:
    started = time.perf_counter()

    def ticker() -> None:
        while not done.wait(tick_s):
            _safely(tick, time.perf_counter() - started)

    threading.Thread(target=ticker, name=name, daemon=True).start()


class LatestWorker(Generic[T]):
    """Runs only the newest request, one at a time, on a daemon thread.

    A request submitted while one runs replaces any request still waiting; a run whose request
    was superseded meanwhile is not shown (its ``on_done``/``on_error`` are skipped). For redraws
    driven by controls: flipping a toggle three times computes at most twice and shows the last.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._pending: tuple[Callable[[], T], Callable[[T], None], Callable[[BaseException], None]] | None = None
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def submit(self, job: Callable[[], T], on_done: Callable[[T], None],
               on_error: Callable[[BaseException], None]) -> None:
        with self._lock:
            self._pending = (job, on_done, on_error)
            self._generation += 1
            if self._thread is None:
                self._idle.clear()
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:
                    self._thread = None
                    self._idle.set()
                    return
                (job, on_done, on_error), self._pending = self._pending, None
                generation = self._generation
            try:
                result = job()
            except BaseException as exc:  # noqa: BLE001 - reported in the widget
                if self._is_current(generation):
                    _safely(on_error, exc)
            else:
                if self._is_current(generation):
                    _safely(on_done, result, on_error)

    def _is_current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing runs or waits; ``False`` on timeout."""
        return self._idle.wait(timeout)


def _safely(fn: Callable[..., None], value: Any, on_error: Callable[[BaseException], None] | None = None) -> None:
    try:
        fn(value)
    except Exception as exc:  # a failing callback must not kill the worker silently
        if on_error is not None:
            _safely(on_error, exc)
        else:
            traceback.print_exc()


def cancel_worker(worker: Any, cancel_button: widgets.Button, progress_label: widgets.HTML) -> None:
    """Ask a running worker to stop before its next step: grey out Cancel and say so on the progress line."""
    if worker.running:
        worker.cancel()
        cancel_button.disabled = True
        progress_label.value += " \u2014 cancelling\u2026"


class Panel(widgets.VBox):
    """A VBox with a ``status`` line and the panel's ``state`` and last ``error`` as traits."""

    state = traitlets.Enum(STATES, "idle", help="idle, running, done, failed or cancelled.")
    error = traitlets.Unicode("", help="The last error's message ('' when the last action succeeded).")

    status: StatusLine

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        panel = super().__new__(cls, *args, **kwargs)
        panel.status = StatusLine()  # before __init__: subclasses place it among their children
        return panel

    def __init__(self, children: list[widgets.Widget] | tuple[widgets.Widget, ...] = (), **kwargs: Any) -> None:
        super().__init__(children=children, **kwargs)

    def _set_state(self, state: str, body: str) -> None:
        self.status.show(state, body)
        if state != "failed":
            self.error = ""
        self.state = state

    def _fail(self, exc: BaseException, *, title: str | None = None, details: str = "") -> None:
        self.status.error(exc, title=title, details=details)
        self.error = f"{type(exc).__name__}: {exc}"
        self.state = "failed"
