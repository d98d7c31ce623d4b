"""Record the warnings that one thread raises, and leave every other thread's warnings alone.

``warnings.catch_warnings(record=True)`` is process-global: while it is open, every thread's
warnings go into its list (swallowed there and attributed to the wrong call), its
``simplefilter("always")`` applies to every thread, and two of them overlapping on two threads
restore each other's state in the wrong order. ``capture_warnings()`` replaces it:

* it hooks ``warnings._showwarnmsg`` (the function the interpreter calls to show a warning,
  underneath ``showwarning`` and every ``catch_warnings``) for as long as any capture is open, and
  routes each warning by thread: the capturing thread's warnings go into its list, every other
  thread's warning is judged by the filters as they were (``error`` still raises in that thread,
  ``ignore`` still hides, ``default``/``module``/``once`` still show once) and shown as usual;
* the capturing thread sees every warning (an ``always`` filter is put first while captures are
  open; other threads do not see it, their filters are emulated without it);
* it is reference-counted: the first capture installs the hook and the filter, the last one to
  close removes exactly them (by identity), so ``warnings.filters`` and the hooks are what they
  were, whatever the order in which overlapping captures close.

``hold_others=True`` keeps other threads' shown warnings back until the last such capture
closes and shows them then: used around an fd-level output capture (``capture.captured_output``),
which would otherwise swallow them into the export's captured text. A warning that an ``error``
filter turns into an exception is raised at once, in its own thread.

Limits: a ``catch_warnings`` block in another thread that was opened before a capture and closes
during it restores the filter list it saved, dropping the ``always`` filter for the rest of that
capture (the capturing thread then sees what the filters show). Nested captures in one thread:
the innermost one records.
"""

from __future__ import annotations

import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["capture_warnings"]

_ALWAYS = ("always", None, Warning, None, 0)
_lock = threading.Lock()
_depth = 0
_holding = 0
_recording: dict[int, list[list[warnings.WarningMessage]]] = {}  # thread id -> open captures' lists
_held: list[warnings.WarningMessage] = []
_shown_once: set[tuple[Any, ...]] = set()  # the once-registry of other threads while installed
_saved: dict[str, Any] = {}


def _matches(pattern: Any, text: str) -> bool:
    if pattern is None:
        return True
    if isinstance(pattern, str):
        return pattern == text
    return bool(pattern.match(text))


def _module_of(filename: str, lineno: int) -> str:
    """The ``__name__`` of the frame that the warning points at (as ``warnings.warn`` reports it)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename == filename and frame.f_lineno == lineno:
            return str(frame.f_globals.get("__name__", ""))
        frame = frame.f_back  # type: ignore[assignment]
    return filename[:-3] if filename.lower().endswith(".py") else filename or "<unknown>"


def _action(msg: warnings.WarningMessage) -> str:
    """What the filters (without the capture's own ``always``) do with ``msg`` in its own thread."""
    text = str(msg.message)
    module = _module_of(msg.filename, msg.lineno)
    action = warnings.defaultaction
    for entry in list(warnings.filters):
        if entry is _ALWAYS:
            continue
        act, pattern, category, mod, line = entry
        if (_matches(pattern, text) and issubclass(msg.category, category) and _matches(mod, module)
                and (line == 0 or line == msg.lineno)):
            action = act
            break
    if action in ("always", "error", "ignore"):
        return action
    key = {"once": ("once", text, msg.category), "module": (module, text, msg.category, 0)}.get(
        action, (module, msg.filename, text, msg.category, msg.lineno))
    with _lock:
        if key in _shown_once:
            return "ignore"
        _shown_once.add(key)
    return "always"


def _route(msg: warnings.WarningMessage) -> None:
    """The installed ``warnings._showwarnmsg``: record for the capturing thread, else show as before."""
    lists = _recording.get(threading.get_ident())
    if lists:
        lists[-1].append(msg)
        return
    show: Callable[[warnings.WarningMessage], None] = _saved.get("show", warnings._showwarnmsg_impl)  # type: ignore[attr-defined]
    action = _action(msg)
    if action == "ignore":
        return
    if action == "error":
        raise msg.message if isinstance(msg.message, Warning) else msg.category(msg.message)
    with _lock:
        if _holding:
            _held.append(msg)
            return
    show(msg)


def _install() -> None:
    _saved["show"] = warnings._showwarnmsg  # type: ignore[attr-defined]
    _saved["filters"] = warnings.filters
    warnings.filters.insert(0, _ALWAYS)  # type: ignore[arg-type]
    warnings._filters_mutated()  # type: ignore[attr-defined]
    warnings._showwarnmsg = _route  # type: ignore[attr-defined]


def _uninstall() -> None:
    warnings._showwarnmsg = _saved.pop("show")  # type: ignore[attr-defined]
    for filters in (warnings.filters, _saved.pop("filters")):
        filters[:] = [f for f in filters if f is not _ALWAYS]
    warnings._filters_mutated()  # type: ignore[attr-defined]
    _shown_once.clear()


@contextmanager
def capture_warnings(*, hold_others: bool = False) -> Iterator[list[warnings.WarningMessage]]:
    """Yield a list that receives every warning the calling thread raises inside the block."""
    global _depth, _holding
    records: list[warnings.WarningMessage] = []
    me = threading.get_ident()
    with _lock:
        if not _depth:
            _install()
        _depth += 1
        _holding += hold_others
        _recording.setdefault(me, []).append(records)
    try:
        yield records
    finally:
        release: list[warnings.WarningMessage] = []
        with _lock:
            show = _saved["show"]
            stack = _recording[me]
            del stack[max(i for i, r in enumerate(stack) if r is records)]
            if not stack:
                del _recording[me]
            _holding -= hold_others
            if hold_others and not _holding:
                release, _held[:] = list(_held), []
            _depth -= 1
            if not _depth:
                _uninstall()
        for msg in release:
            show(msg)
