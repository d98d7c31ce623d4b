"""captured_output catches stdout/stderr at the file-descriptor level (C/C++ output) and the Python level."""

from __future__ import annotations

import ctypes
import io
import logging
import os
import sys
import threading
import warnings

import pytest

from workbench.core.capture import CAPTURE_LOCK, captured_output


def test_python_print_to_stdout_and_stderr_is_captured(capsys):
    with captured_output() as cap:
        print("to stdout")
        print("to stderr", file=sys.stderr)
    assert "to stdout" in cap.text and "to stderr" in cap.text
    seen = capsys.readouterr()
    assert "to stdout" not in seen.out and "to stderr" not in seen.err


def test_fd_level_writes_are_captured(capfd):
    with captured_output() as cap:
        os.write(1, b"fd one\n")
        os.write(2, b"fd two\n")
    assert "fd one" in cap.text and "fd two" in cap.text
    assert cap.fds == (1, 2)
    seen = capfd.readouterr()
    assert "fd one" not in seen.out and "fd two" not in seen.err


def test_c_stdio_printf_is_captured_even_when_buffered(capfd):
    try:
        libc = ctypes.CDLL(None)
        libc.printf  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("no C library reachable through ctypes")
    with captured_output() as cap:
        libc.printf(b"from printf %d\n", 42)  # fully buffered when fd 1 is not a terminal
    assert "from printf 42" in cap.text
    assert "from printf" not in capfd.readouterr().out


def test_streams_and_fds_are_restored_after_exit(capfd):
    before = (sys.stdout, sys.stderr)
    with captured_output():
        pass
    assert (sys.stdout, sys.stderr) == before
    os.write(1, b"after\n")
    assert "after" in capfd.readouterr().out


def test_nested_captures_each_hold_their_output_and_the_outer_holds_all(capfd):
    with captured_output() as outer:
        print("outer before")
        with captured_output() as inner:
            print("inner")
            os.write(2, b"inner fd\n")
        print("outer after")
    assert "inner" in inner.text and "inner fd" in inner.text and "outer" not in inner.text
    lines = outer.lines()
    assert lines == ["outer before", "inner", "inner fd", "outer after"]
    assert "inner" not in capfd.readouterr().out


def test_warnings_are_recorded_and_written_into_the_text():
    with captured_output() as cap:
        warnings.warn("a deliberate warning", UserWarning, stacklevel=1)
    assert cap.warnings == ["UserWarning: a deliberate warning"]
    assert "a deliberate warning" in cap.text
    assert bool(cap)


def test_python_level_stream_without_fileno_like_ipykernel(monkeypatch):
    """In ipykernel sys.stdout is an OutStream, not fd 1: both levels must still be caught."""
    fake_out, fake_err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", fake_out)
    monkeypatch.setattr(sys, "stderr", fake_err)
    with captured_output() as cap:
        print("python level")
        os.write(1, b"c level\n")
    assert "python level" in cap.text and "c level" in cap.text
    assert fake_out.getvalue() == "" and fake_err.getvalue() == ""
    assert sys.stdout is fake_out and sys.stderr is fake_err


def test_closed_fd_falls_back_to_python_level(capfd):
    saved = os.dup(2)
    os.close(2)
    try:
        with captured_output() as cap:
            print("still caught", file=sys.stderr)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    assert "still caught" in cap.text


def test_a_second_thread_waits_for_the_lock():
    order: list[str] = []

    def other() -> None:
        with captured_output() as cap:
            order.append("other")
            print("from other")
        order.append(cap.text.strip())

    with captured_output():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=0.2)  # it cannot enter while this capture holds the lock
        order.append("main done")
    thread.join(timeout=10)
    assert order == ["main done", "other", "from other"]
    assert CAPTURE_LOCK.acquire(blocking=False)
    CAPTURE_LOCK.release()


def test_a_logging_handler_made_on_the_old_stderr_is_captured(monkeypatch):
    fake_err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake_err)
    logger = logging.getLogger("workbench.tests.capture")
    handler = logging.StreamHandler()  # holds fake_err, as ipykernel's loggers hold its OutStream
    logger.addHandler(handler)
    try:
        with captured_output() as cap:
            logger.warning("from a logger")
    finally:
        logger.removeHandler(handler)
    assert "from a logger" in cap.text and fake_err.getvalue() == ""
    assert handler.stream is fake_err


def test_a_failure_while_setting_up_puts_every_fd_and_stream_back(monkeypatch):
    """Reviewer's case: os.dup failing (EMFILE) after fds 1/2 were redirected left them on a deleted file."""
    from workbench.core import capture

    before = [os.fstat(fd) for fd in (1, 2)]
    out, err = sys.stdout, sys.stderr

    def no_more_fds(tmp_fd: int) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(capture, "_python_stream", no_more_fds)
    with pytest.raises(OSError, match="Too many open files"):
        with capture.captured_output():
            pass  # pragma: no cover - never reached
    after = [os.fstat(fd) for fd in (1, 2)]
    assert [(s.st_dev, s.st_ino) for s in after] == [(s.st_dev, s.st_ino) for s in before]
    assert sys.stdout is out and sys.stderr is err


def test_the_text_printed_before_an_exception_is_kept():
    from workbench.core.capture import captured_output

    with pytest.raises(RuntimeError):
        with captured_output() as cap:
            os.write(1, b"said before failing\n")
            raise RuntimeError("boom")
    assert "said before failing" in cap.text
