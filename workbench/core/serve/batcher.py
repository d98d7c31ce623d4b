"""``MicroBatcher``: dynamic micro-batching on asyncio, model runs on a worker thread pool.

Requests with the same signature (dtypes and shapes past the batch axis) wait in one group; a group runs
when it holds ``max_batch`` rows or its oldest request has waited ``max_wait_ms``, as soon as a worker is
free. The rows are stacked, ``run`` is called once on a worker thread (never on the event loop, which keeps
answering ``/v1/health``) and the outputs are split back, in order, to each caller's future. A full queue
raises ``QueueFull`` at once (the app answers 503 with ``Retry-After``); a request whose caller gave up (its
future cancelled) is skipped; a run that raises fails that batch's requests with ``BatchFailed`` and the batcher
carries on.
``close()`` drains: every accepted request is answered before it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

from workbench.errors import WorkbenchError, brief

__all__ = ["BatchFailed", "BatchInfo", "MicroBatcher", "OutputNotBatched", "QueueFull"]

RunFn = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


class QueueFull(WorkbenchError):
    """The queue holds ``max_queue`` requests (or the server is stopping): answer 503 and retry later."""


class OutputNotBatched(WorkbenchError):
    """An output's first axis does not hold the request's rows: a problem of the model or the server's
    configuration, not of the request."""


class BatchFailed(WorkbenchError):
    """The model run of a batch raised, or its outputs could not be split back; ``reason`` is the error in one
    line, ``error`` the kind (the 500's ``error`` field)."""

    def __init__(self, reason: str, rows: int, *, split: bool = False) -> None:
        self.reason = reason
        self.error = "model output has no batch axis (a model/configuration problem)" if split else "model failed"
        what = "The outputs could not be split back" if split else "The model failed"
        super().__init__(f"{what} on a batch of {rows} rows: {reason}")


@dataclass(frozen=True)
class BatchInfo:
    """What a request's answer says about its batch: rows in the batch, ms queued, ms of the model run."""

    batch_size: int
    queue_ms: float
    compute_ms: float


@dataclass
class _Item:
    feed: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future
    enqueued: float
    dispatched: float = 0.0


class MicroBatcher:
    """See the module docstring. ``metrics`` is a ``ServerMetrics`` or None."""

    def __init__(self, run: RunFn, *, max_batch: int = 16, max_wait_ms: float = 5.0, max_queue: int = 256,
                 workers: int = 1, batched: bool = True, metrics: Any = None) -> None:
        self._run_fn = run
        self.batched = batched
        self.max_batch = max_batch if batched else 1
        self.max_wait_s = max_wait_ms / 1e3
        self.max_queue = max_queue
        self.workers = workers
        self.metrics = metrics
        self._groups: dict[Hashable, deque[_Item]] = {}
        self._pending = 0
        self._free = workers
        self._closing = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._runs: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="wb-serve-run")

    @property
    def pending(self) -> int:
        """Requests waiting in the queue (not yet in a running batch)."""
        return self._pending

    @property
    def running(self) -> int:
        return self.workers - self._free

    def start(self) -> None:
        """Start the scheduling task on the running event loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def enqueue(self, feed: dict[str, np.ndarray], rows: int, signature: Hashable) -> asyncio.Future:
        """Queue one request (on the event loop); the future gets ``(outputs, BatchInfo)`` or ``BatchFailed``.
        Raises ``QueueFull`` at once. Cancelling the future drops the request from the queue."""
        if self._wake is None:
            raise WorkbenchError("The batcher is not started: call start() on the server's event loop.")
        if self._closing:
            raise QueueFull("The server is stopping and accepts no new requests.")
        if self._pending >= self.max_queue:
            raise QueueFull(f"The queue is full ({self._pending} of max_queue={self.max_queue} requests waiting).")
        item = _Item(feed, rows, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._groups.setdefault(signature, deque()).append(item)
        self._pending += 1
        self._gauge()
        if self._free:  # with every worker busy the scheduler waits for a run to end, not for requests
            self._wake.set()
        return item.future

    async def close(self) -> None:
        """Stop accepting, answer every accepted request, then stop the scheduler and the worker threads."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._runs:
            await asyncio.gather(*self._runs, return_exceptions=True)
        self._executor.shutdown(wait=True)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._pending)

    def _purge(self) -> None:
        for key in list(self._groups):
            group = self._groups[key]
            if not any(item.future.cancelled() for item in group):
                continue
            kept = deque(item for item in group if not item.future.cancelled())
            self._pending -= len(group) - len(kept)
            if kept:
                self._groups[key] = kept
            else:
                del self._groups[key]
        self._gauge()

    def _ready(self, now: float) -> tuple[Hashable | None, float]:
        """The group to run now (the one with the oldest request among the ready ones), else the seconds to wait."""
        best: Hashable | None = None
        best_age = -1.0
        wait = self.max_wait_s
        for key, group in self._groups.items():
            age = now - group[0].enqueued
            rows = sum(item.rows for item in group)
            if rows >= self.max_batch or age >= self.max_wait_s or self._closing:
                if age > best_age:
                    best, best_age = key, age
            else:
                wait = min(wait, self.max_wait_s - age)
        return best, max(wait, 0.0)

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            self._purge()
            if self._closing and not self._pending:
                return
            if not self._free or not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            key, wait = self._ready(time.perf_counter())
            if key is None:
                self._wake.clear()
                timer = asyncio.get_running_loop().call_later(wait, self._wake.set)  # cheaper than wait_for
                await self._wake.wait()
                timer.cancel()
                continue
            items = self._take(key)
            self._free -= 1
            task = asyncio.get_running_loop().create_task(self._run(items))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    def _take(self, key: Hashable) -> list[_Item]:
        group = self._groups[key]
        items = [group.popleft()]
        rows = items[0].rows
        while group and rows + group[0].rows <= self.max_batch:
            rows += group[0].rows
            items.append(group.popleft())
        if not group:
            del self._groups[key]
        self._pending -= len(items)
        self._gauge()
        now = time.perf_counter()
        for item in items:
            item.dispatched = now
        return items

    def _work(self, items: list[_Item]) -> tuple[list[np.ndarray], float]:
        """On a worker thread: stack the rows, run the model once, time it."""
        if len(items) == 1:
            feed = items[0].feed
        else:
            feed = {name: np.concatenate([item.feed[name] for item in items]) for name in items[0].feed}
        start = time.perf_counter()
        outputs = self._run_fn(feed)
        return outputs, time.perf_counter() - start

    async def _run(self, items: list[_Item]) -> None:
        rows = sum(item.rows for item in items)
        try:
            outputs, seconds = await asyncio.get_running_loop().run_in_executor(self._executor, self._work, items)
            parts = _split(outputs, [item.rows for item in items], self.batched)
        except Exception as exc:  # the model failed: fail these requests, keep serving
            failure = BatchFailed(brief(exc), rows, split=isinstance(exc, OutputNotBatched))
            for item in items:
                if not item.future.done():
                    item.future.set_exception(failure)
            return
        finally:
            self._free += 1
            if self._wake is not None:
                self._wake.set()
        if self.metrics is not None:
            self.metrics.batch_size.observe(rows)
            self.metrics.compute_seconds.observe(seconds)
        for item, part in zip(items, parts):
            info = BatchInfo(rows, (item.dispatched - item.enqueued) * 1e3, seconds * 1e3)
            if self.metrics is not None:
                self.metrics.queue_seconds.observe(item.dispatched - item.enqueued)
            if not item.future.done():
                item.future.set_result((part, info))


def _split(outputs: list[np.ndarray], rows: list[int], batched: bool = True) -> list[list[np.ndarray]]:
    """Each caller's rows of every output, in order. Not ``batched`` (one request per run, no batch axis): the
    outputs whole. Batched, every output's first axis must hold the rows, also for one request (whose answer
    may drop that axis), else ``OutputNotBatched``."""
    if not batched:
        return [list(outputs)]
    total = sum(rows)
    for i, out in enumerate(outputs):
        if np.ndim(out) == 0 or out.shape[0] != total:
            raise OutputNotBatched(
                f"Output {i} has shape {list(np.shape(out))}, but the batch held {total} rows: its first axis is not "
                "the batch axis, so the rows cannot be split back to the requests. This is a problem of the model "
                "or the server's configuration, not of the request: export the model with the batch axis first on "
                "every output, or with a fixed batch size (then each request runs alone).")
    if len(rows) == 1:
        return [list(outputs)]
    bounds = np.cumsum([0] + rows)
    return [[out[bounds[k]:bounds[k + 1]] for out in outputs] for k in range(len(rows))]
