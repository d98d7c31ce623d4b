"""One cell of a ``sweep()``: eager PyTorch and every ONNX Runtime session at one (batch, seq),
measured interleaved in short blocks (``paired.measure_interleaved``), and the rows it makes.

Measuring a cell's targets in turns, rather than one config's whole grid after another's, is what
makes a speed-up a ratio taken under the same machine conditions; dropping each block's first
call keeps ONNX Runtime's still-spinning intra-op threads from slowing the call that follows.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Callable

import onnxruntime as ort
import torch
from torch import nn

from workbench.core._locks import TORCH_LOCK
from workbench.core.bench import module_call, timing_error, torch_threads
from workbench.core.cancel import Cancel
from workbench.core.feeds import build_feed
from workbench.core.measurement import Measurement
from workbench.core.paired import Interleaved, measure_interleaved
from workbench.core.session import SessionConfig
from workbench.core.sweep_results import EAGER, SweepResult, SweepRow, fill_speedups

__all__ = ["Cell", "Knobs", "Recorder", "SweepProgress", "Target", "measure_cell"]

#: ``progress(done, total, label)``: called after each row of a sweep.
SweepProgress = Callable[[int, int, str], Any]


@dataclass
class Cell:
    """One (batch, seq) of the grid: its inputs (tensors for eager, a feed by graph name for ORT),
    FLOPs per call, or the error that kept its inputs from being made."""

    batch: int
    seq: int | None
    inputs: tuple[torch.Tensor, ...] | None = None
    feed: dict[str, torch.Tensor] | None = None
    flops: int | None = None
    error: BaseException | None = None

    @property
    def where(self) -> str:
        return f"batch={self.batch}" + (f" seq={self.seq}" if self.seq is not None else "")


@dataclass
class Target:
    """Eager PyTorch (``config=None``) or one ORT config with its session (or why it did not open)."""

    label: str
    config: SessionConfig | None
    session: ort.InferenceSession | None = None
    open_error: BaseException | None = None

    @property
    def threads(self) -> int | None:
        if self.session is None:
            return None
        return self.session.get_session_options().intra_op_num_threads or None


@dataclass(frozen=True)
class Knobs:
    """How each cell is measured (see ``sweep()``)."""

    warmup: int
    block: int
    min_rounds: int
    max_rounds: int
    budget_s: float
    rel_ci: float
    eager_threads: int | None


class Recorder:
    """Collects rows, measurements, ratios and exceptions; reports progress per row and the result
    so far per cell."""

    def __init__(self, total: int, progress: SweepProgress | None,
                 on_row: Callable[[SweepResult], Any] | None = None, precision: str = "float32") -> None:
        self.result = SweepResult(total=total, precision=precision)
        self.progress = progress
        self.on_row = on_row

    def _added(self, label: str, cell: Cell) -> None:
        if self.progress is not None:
            self.progress(len(self.result.rows), self.result.total, f"{label} {cell.where}")

    def error(self, label: str, cell: Cell, stage: str, exc: BaseException) -> None:
        key = (label, cell.batch, cell.seq)
        text = f"{stage}: {type(exc).__name__}: {str(exc).strip()}"
        self.result.rows.append(SweepRow(label, cell.batch, cell.seq, error=text))
        self.result.exceptions[key] = exc
        self._added(label, cell)

    def measured(self, label: str, cell: Cell, m: Measurement, run: Interleaved, *, with_ratio: bool) -> None:
        ratio = run.ratio(label) if with_ratio else None
        key = (label, cell.batch, cell.seq)
        row = SweepRow.from_measurement(label, cell.batch, cell.seq, m, ratio, rounds=run.rounds, stopped=run.stopped)
        self.result.rows.append(row)
        self.result.measurements[key] = m
        if ratio is not None:
            self.result.ratios[key] = ratio
        self._added(label, cell)

    def cell_done(self) -> None:
        if self.on_row is not None:
            fill_speedups(self.result.rows)
            self.on_row(self.result)


def _call(model: nn.Module | None, target: Target, cell: Cell) -> tuple[Callable[[], Any], Any]:
    """A no-argument call of ``target`` on the cell's inputs, and the feed (for ORT's error)."""
    if target.config is None:
        return module_call(model, cell.inputs), None  # type: ignore[arg-type]
    feed = build_feed(target.session, cell.feed)
    return functools.partial(target.session.run, None, feed), feed  # type: ignore[union-attr]


def _ready(model: nn.Module | None, cell: Cell, targets: list[Target], warmup: int
           ) -> tuple[dict[str, Callable[[], Any]], dict[str, tuple[str, BaseException]]]:
    """The runners that ran their ``warmup`` calls (at least one) and the failures of the others."""
    runners: dict[str, Callable[[], Any]] = {}
    failed: dict[str, tuple[str, BaseException]] = {}
    for target in targets:
        if target.open_error is not None:
            failed[target.label] = ("session", target.open_error)
            continue
        feed = None
        try:
            call, feed = _call(model, target, cell)
            for _ in range(max(1, warmup)):
                call()
        except Exception as exc:  # captured as a row: one failing target does not stop the cell
            failed[target.label] = ("run", timing_error(exc, target.label, session=target.session, feed=feed))
        else:
            runners[target.label] = call
    return runners, failed


def _measure(runners: dict[str, Callable[[], Any]], knobs: Knobs, cancel: Cancel) -> Interleaved:
    reference = EAGER if EAGER in runners else next(iter(runners))
    return measure_interleaved(runners, reference=reference, block=knobs.block, min_rounds=knobs.min_rounds,
                               max_rounds=knobs.max_rounds, budget_s=knobs.budget_s, rel_ci=knobs.rel_ci,
                               cancel=cancel)


def measure_cell(model: nn.Module | None, cell: Cell, targets: list[Target], knobs: Knobs, rec: Recorder,
                 cancel: Cancel) -> bool:
    """Measure every target at ``cell`` interleaved and record one row each (in ``targets``' order).

    Returns ``False`` when cancelled during the cell (its rows are then not recorded)."""
    if cell.error is not None:
        for target in targets:
            rec.error(target.label, cell, "inputs", cell.error)
        rec.cell_done()
        return True
    eager = any(t.config is None for t in targets)
    run: Interleaved | None = None
    run_error: BaseException | None = None
    # Eager runs hold TORCH_LOCK shared (never while an export has it) and set torch's thread count.
    guard = TORCH_LOCK.shared() if eager else contextlib.nullcontext()
    with torch_threads(knobs.eager_threads if eager else None) as used, guard, torch.inference_mode():
        runners, failed = _ready(model, cell, targets, knobs.warmup)
        if runners:
            try:
                run = _measure(runners, knobs, cancel)
            except Exception as exc:  # a target that ran its warm-up but failed later: every row says so
                run_error = exc
    if run is not None and run.stopped == "cancelled":
        return False
    for target in targets:
        if target.label in failed:
            rec.error(target.label, cell, *failed[target.label])
        elif run_error is not None or run is None:
            rec.error(target.label, cell, "run", run_error or RuntimeError("not measured"))
        else:
            threads = used if target.config is None else target.threads
            m = Measurement(target.label, list(run.times[target.label]), batch_size=cell.batch, flops=cell.flops,
                            threads=threads, warmup=knobs.warmup)
            rec.measured(target.label, cell, m, run, with_ratio=run.reference == EAGER and target.label != EAGER)
    rec.cell_done()
    return True
