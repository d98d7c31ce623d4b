"""Capture everything written to stdout and stderr, from Python and from C/C++ alike.

``captured_output()`` redirects two things while it is open:

* the file descriptors 1 and 2 (``os.dup``/``os.dup2`` onto a temporary file), so what C and C++
  code writes (torch's ``shape_type_inference.cpp`` warnings, the "Torch IR graph at exception"
  dump, onnxruntime's logger) lands in the capture and not on the terminal or a notebook cell;
* ``sys.stdout``/``sys.stderr``, so ``print``, ``warnings`` and ``logging`` handlers that write to
  them are caught too, also where they are not the file descriptors (ipykernel's ``OutStream``,
  pytest's capture); a ``logging.StreamHandler`` made earlier on one of those streams is pointed at
  the capture for the duration as well. Python warnings shown inside (the warning filters decide, as always) are
  written into the text and also listed, as ``"Category: message"``, in ``Captured.warnings``.

Both are **process-global**: every thread's output goes to the capture while it is open. So the
context manager holds a process-wide re-entrant lock (``CAPTURE_LOCK``) for its whole duration: a
second thread that opens a capture waits until the first one closes; a thread that merely prints
meanwhile has its output captured. Keep what runs inside short (one export, one session run).

Nesting in one thread is allowed: an inner capture holds what was written while it was open, and on
exit hands the same text on to the enclosing capture, so the outer ``.text`` holds everything.

Where a file descriptor cannot be duplicated (closed, or not a real descriptor), only the Python
level is redirected; the context manager never fails because of it.
"""

from __future__ import annotations

import ctypes
import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

CAPTURE_LOCK = threading.RLock()
_FDS = (1, 2)
_open: list[tuple["Captured", io.TextIOWrapper]] = []  # open captures, outermost first; under CAPTURE_LOCK


@dataclass
class Captured:
    """What a capture caught. ``text`` and ``warnings`` are filled in when the ``with`` block exits."""

    text: str = ""
    warnings: list[str] = field(default_factory=list)
    fds: tuple[int, ...] = ()  # the file descriptors that were redirected (empty: Python level only)

    def __bool__(self) -> bool:
        return bool(self.text.strip() or self.warnings)

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"Captured({len(self.text)} chars, {len(self.warnings)} warnings, fds={self.fds})"


def _flush_c_stdio() -> None:
    """Flush C stdio buffers (printf, std::cout): they would otherwise reach the fd after we restore it."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no libc by that name (Windows) or no symbol
        pass


def _flush(stream: object) -> None:
    try:
        stream.flush()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        pass


def _redirect_fds(target: int) -> dict[int, int]:
    """dup2 ``target`` onto fds 1 and 2; return {fd: saved copy} for those that could be redirected."""
    saved: dict[int, int] = {}
    for fd in _FDS:
        try:
            copy = os.dup(fd)
        except OSError:
            continue
        try:
            os.dup2(target, fd)
        except OSError:
            os.close(copy)
            continue
        saved[fd] = copy
    return saved


def _restore_fds(saved: dict[int, int]) -> None:
    """Point every saved fd back; try each one even when another fails, then raise the first error."""
    failed: OSError | None = None
    for fd, copy in saved.items():
        try:
            os.dup2(copy, fd)
        except OSError as exc:
            failed = failed or exc
        finally:
            os.close(copy)
    if failed is not None:
        raise failed


def _swap_handler_streams(old: tuple[object, ...], new: io.TextIOWrapper) -> list[tuple[logging.StreamHandler, Any]]:
    """Point every logging ``StreamHandler`` that writes to one of ``old`` at ``new``; return what to restore.

    A handler keeps the stream it was made with (``sys.stderr`` at that time, e.g. ipykernel's
    ``OutStream``), so swapping ``sys.stderr`` alone would not catch it."""
    loggers = [logging.getLogger()] + [lg for lg in list(logging.Logger.manager.loggerDict.values())
                                       if isinstance(lg, logging.Logger)]
    swapped = []
    for logger in loggers:
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and any(handler.stream is o for o in old):
                swapped.append((handler, handler.setStream(new)))
    return swapped


def _python_stream(tmp_fd: int) -> io.TextIOWrapper:
    """A text stream over the capture file, for sys.stdout/sys.stderr (it has a real ``fileno``)."""
    raw = open(os.dup(tmp_fd), "wb", buffering=0, closefd=True)  # closed with the wrapper at the capture's end
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", line_buffering=True, write_through=True)


@contextmanager
def captured_output() -> Iterator[Captured]:
    """Capture stdout and stderr, Python and C level, while the block runs; see the module docstring.

    >>> with captured_output() as cap:
    ...     print("hello")
    >>> cap.text
    'hello\\n'
    """
    with CAPTURE_LOCK:
        captured = Captured()
        _flush(sys.stdout)
        _flush(sys.stderr)
        _flush_c_stdio()
        with tempfile.TemporaryFile() as tmp:
            # Each step registers its undo as soon as it has succeeded, so a failure (or an interrupt)
            # anywhere in the setup or the block still puts back every stream, fd and hook it changed.
            try:
                with contextlib.ExitStack() as undo:
                    saved = _redirect_fds(tmp.fileno())
                    undo.callback(_restore_fds, saved)
                    captured.fds = tuple(saved)
                    undo.callback(_flush_c_stdio)
                    stream = _python_stream(tmp.fileno())
                    undo.callback(stream.close)
                    old_out, old_err = sys.stdout, sys.stderr
                    undo.callback(_put_back_sys_streams, old_out, old_err)
                    sys.stdout = sys.stderr = stream
                    undo.callback(_flush_all, stream)
                    handlers = _swap_handler_streams((old_out, old_err, sys.__stdout__, sys.__stderr__), stream)
                    undo.callback(_put_back_handlers, handlers)
                    _open.append((captured, stream))
                    undo.callback(_open.pop)
                    shown, recorder = warnings.showwarning, _recorder(captured, stream)
                    warnings.showwarning = recorder  # not catch_warnings: that would also save/restore the filters
                    undo.callback(_put_back_showwarning, recorder, shown)
                    yield captured
            finally:  # also when the block raised: what was printed until then is kept
                tmp.seek(0)
                captured.text = tmp.read().decode("utf-8", errors="replace")
                if _open:  # nested: the enclosing capture holds this one's output too
                    outer, outer_stream = _open[-1]
                    outer_stream.write(captured.text)
                    outer.warnings.extend(captured.warnings)


def _put_back_sys_streams(out: Any, err: Any) -> None:
    sys.stdout, sys.stderr = out, err


def _flush_all(stream: io.TextIOWrapper) -> None:
    for written in (stream, sys.__stdout__, sys.__stderr__):
        _flush(written)


def _put_back_handlers(handlers: list[tuple[logging.StreamHandler, Any]]) -> None:
    for handler, previous in handlers:
        handler.setStream(previous)


def _put_back_showwarning(recorder: Any, shown: Any) -> None:
    if warnings.showwarning is recorder:
        warnings.showwarning = shown


def _recorder(captured: Captured, stream: io.TextIOWrapper) -> Any:
    """A ``warnings.showwarning`` that records the warning and writes it, formatted, into the capture."""

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        captured.warnings.append(f"{category.__name__}: {message}")
        try:
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))
        except (OSError, ValueError):
            pass

    return show
