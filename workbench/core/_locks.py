"""Process-wide locks and overrides for the state that PyTorch and Python keep per process.

The widgets run core calls on worker threads, so two calls can overlap. Three kinds of state
are process-wide and need care:

* **torch.export is not thread-safe.** While a model is exported its parameters are swapped for
  fake tensors and global dispatch/tracing state is set: a second export fails
  ("fake_mode.in_kernel_invocation must be False", PassError), and a ``compare`` of the same model
  running beside it receives fake tensors. ``TORCH_LOCK`` is a re-entrant readers-writer lock:
  ``export`` holds it exclusively; whatever only *runs* a PyTorch model (compare, probe, the eager
  benchmark and sweep, the doctor's runs: ``TORCH_LOCK.shared()``) holds it shared, so such runs
  still overlap with each other but never with an export. A block that changes torch's thread
  count holds it exclusively (``bench.torch_threads``), so the count it sets is the one it runs
  with and the one it restores is the one it found. A thread that holds the lock shared and asks
  for it exclusively waits until the other readers leave; if a second thread does the same at
  the same time, that would deadlock, and it raises ``RuntimeError`` instead.

  Why a lock and not a child process per export: a child process would isolate the export
  completely and make cancelling real, but the model has to reach the child. With ``spawn`` a
  model defined in a notebook cell (``__main__``) cannot be unpickled there, and large weights
  are copied; ``fork`` from a process that already runs OpenMP/MKL threads and Jupyter's
  threads can deadlock in the child. The workbench's users export models they just defined in
  a notebook, so the export stays in-process and is serialized.

* **Logger levels, warning filters, torch's thread count** are process-global values that a call
  changes for its duration. ``SharedOverride`` changes one such value for as long as any caller
  is inside: the first entrant saves the old value, the last one to leave restores it, so
  overlapping calls never leave a changed value behind.

Lock order, to rule out deadlocks: ``capture.CAPTURE_LOCK`` (the fd-level output capture) is
taken before ``TORCH_LOCK``; never take ``CAPTURE_LOCK`` while holding ``TORCH_LOCK``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["TORCH_LOCK", "SharedOverride", "TorchLock"]


class TorchLock:
    """A re-entrant readers-writer lock (see the module docstring); waiting writers go first."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}  # thread id -> how many shared holds it has
        self._writer: int | None = None
        self._writer_depth = 0
        self._writers_waiting = 0
        self._upgrading: int | None = None

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared: other shared holders may run, an exclusive holder may not."""
        me = threading.get_ident()
        with self._cond:
            if self._writer != me and me not in self._readers:  # re-entry never waits
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                left = self._readers[me] - 1
                if left:
                    self._readers[me] = left
                else:
                    del self._readers[me]
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the lock alone (re-entrant: the holder may take it again, shared or exclusive)."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
            else:
                self._wait_for_exclusive(me)
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                    self._cond.notify_all()

    def _wait_for_exclusive(self, me: int) -> None:
        if me in self._readers:
            if self._upgrading is not None:
                raise RuntimeError(
                    "Two threads that each run a PyTorch model asked to export (or change torch's thread count) "
                    "at once; each would wait for the other. Export outside the model run."
                )
            self._upgrading = me
        self._writers_waiting += 1
        try:
            while self._writer is not None or any(t != me for t in self._readers):
                self._cond.wait()
        finally:
            self._writers_waiting -= 1
            if self._upgrading == me:
                self._upgrading = None
        self._writer, self._writer_depth = me, 1

    def held(self) -> str | None:
        """``"exclusive"``, ``"shared"`` or None: how the calling thread holds the lock."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                return "exclusive"
            return "shared" if me in self._readers else None


#: The one lock that serializes exports with each other and with every run of a PyTorch model.
TORCH_LOCK = TorchLock()


class SharedOverride:
    """A process-wide value changed while any caller is inside ``override``.

    ``read()`` gives the current value and ``write(value)`` sets it. The first caller to enter
    saves the value it finds; each caller sets its own value on entry (the latest entrant's value
    holds while calls overlap); the last one to leave restores the saved value.
    """

    def __init__(self, read: Callable[[], Any], write: Callable[[Any], None]) -> None:
        self._read, self._write = read, write
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: Any = None

    @property
    def active(self) -> bool:
        return self._depth > 0

    @contextmanager
    def override(self, value: Any) -> Iterator[None]:
        with self._lock:
            if not self._depth:
                self._saved = self._read()
            self._depth += 1
            try:
                self._write(value)
            except BaseException:
                self._leave()
                raise
        try:
            yield
        finally:
            with self._lock:
                self._leave()

    def _leave(self) -> None:
        self._depth -= 1
        if not self._depth:
            saved, self._saved = self._saved, None
            self._write(saved)
