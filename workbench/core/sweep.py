"""``sweep()``: latency of eager PyTorch and ONNX Runtime configs over batch sizes and sequence
lengths, one ``benchmark()`` per cell, with failures kept as rows and a cooperative cancel.

The rows and the result live in ``sweep_results.py``; each cell is timed by ``bench.benchmark``.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import onnx
import torch
from torch import nn

from workbench.core._checks import is_int
from workbench.core._io import OnnxModel, check_onnx_path, load_model
from workbench.core.bench import Measurement, benchmark, check_budget
from workbench.core.cancel import Cancel, check_cancel, is_cancelled
from workbench.core.feeds import by_graph_name
from workbench.core.flops import graph_flops
from workbench.core.graph import graph_inputs
from workbench.core.inputs import as_input_tuple, axis_symbols, check_module, resize_batch_seq
from workbench.core.session import SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.core.sweep_results import EAGER, SweepResult, SweepRow, fill_speedups
from workbench.errors import InvalidInputError, describe

__all__ = ["EAGER", "SweepProgress", "SweepResult", "SweepRow", "sweep"]

SWEEP_RUNS = 20

#: ``progress(done, total, label)``: called after each cell of a sweep.
SweepProgress = Callable[[int, int, str], Any]
InputFactory = Callable[..., Any]


# ---------------------------------------------------------------------------------------------
# Checking the arguments
# ---------------------------------------------------------------------------------------------


def _check_sizes(values: Any, what: str, *, allow_none: bool) -> list[int | None]:
    items = list(values) if isinstance(values, (list, tuple, range)) else None
    ok = bool(items) and all(
        (v is None and allow_none) or is_int(v, 1) for v in items
    )
    if not ok:
        hint = " Use [None] for a model without a sequence axis." if allow_none else ""
        raise InvalidInputError(f"{what} must be a non-empty list of ints >= 1, received {values!r}.{hint}")
    return items  # type: ignore[return-value]


def _check_configs(configs: Any) -> list[tuple[str, SessionConfig]]:
    """Configs with unique labels (a repeated label gets ``#2``, ``#3``...)."""
    items = [configs] if isinstance(configs, SessionConfig) else list(configs or [])
    labelled: list[tuple[str, SessionConfig]] = []
    for config in items:
        if not isinstance(config, SessionConfig):
            raise InvalidInputError(
                f"configs must hold wb.SessionConfig objects, received {describe(config)}. "
                "Build them like wb.SessionConfig(opt_level='basic', intra_op_threads=2)."
            )
        label, n = config.label(), 2
        taken = {lab for lab, _ in labelled} | {EAGER}
        while label in taken:
            label, n = f"{config.label()}#{n}", n + 1
        labelled.append((label, config))
    return labelled


def _input_maker(
    input_factory: InputFactory | None, spec: ExportSpec | None, example_inputs: Any, seq_lens: Sequence[int | None]
) -> Callable[[int, int | None], tuple[torch.Tensor, ...]]:
    """A function ``(batch, seq) -> inputs``: the factory, or the example inputs resized by the spec."""
    if input_factory is not None:
        if not callable(input_factory):
            raise InvalidInputError(f"input_factory must be callable as f(batch=, seq=), received {describe(input_factory)}.")
        return lambda b, s: as_input_tuple(input_factory(batch=b, seq=s), what="input_factory(batch=, seq=)")
    if spec is None or example_inputs is None:
        raise InvalidInputError(
            "sweep needs a way to make inputs at each size: pass input_factory=case.make_inputs, "
            f"or spec= and example_inputs= (received spec={describe(spec)}, example_inputs={describe(example_inputs)})."
        )
    examples = as_input_tuple(example_inputs)
    symbols = axis_symbols(spec.dynamic_axes, spec.input_names)
    needed = 2 if any(s is not None for s in seq_lens) else 1
    if len(symbols) < needed:
        raise InvalidInputError(
            f"The spec's dynamic input axes are {symbols}, but the sweep needs {needed} (batch"
            f"{', sequence' if needed == 2 else ''}). Add them to spec.dynamic_axes, or use seq_lens=[None]."
        )
    return lambda b, s: resize_batch_seq(examples, spec.input_names, spec.dynamic_axes, b, s)


def _eager_threads(configs: list[tuple[str, SessionConfig]], threads: int | None) -> int | None:
    """Eager runs on the configs' common intra-op thread count, when they agree on one."""
    if threads is not None:
        return threads
    counts = {c.intra_op_threads for _, c in configs}
    return counts.pop() if len(counts) == 1 and 0 not in counts else None


# ---------------------------------------------------------------------------------------------
# sweep()
# ---------------------------------------------------------------------------------------------


@dataclass
class _Cell:
    batch: int
    seq: int | None
    inputs: tuple[torch.Tensor, ...] | None = None
    feed: dict[str, torch.Tensor] | None = None
    flops: int | None = None
    error: BaseException | None = None


def _prepare_cells(
    shapes: list[tuple[int, int | None]], make: Callable[[int, int | None], tuple[torch.Tensor, ...]],
    proto: onnx.ModelProto, spec: ExportSpec | None,
) -> list[_Cell]:
    names = [v.name for v in graph_inputs(proto.graph)]
    cells = []
    for b, s in shapes:
        cell = _Cell(b, s)
        try:
            cell.inputs = make(b, s)
            cell.feed = by_graph_name(cell.inputs, names, spec.input_names if spec is not None else ())
        except Exception as exc:  # captured: the row says why this shape could not run
            cell.error = exc
        else:
            try:
                cell.flops = graph_flops(proto, {n: tuple(t.shape) for n, t in cell.feed.items()})
            except Exception:
                cell.flops = None  # FLOPs are a bonus; an unknown count does not fail the cell
        cells.append(cell)
    return cells


def _error_text(stage: str, exc: BaseException) -> str:
    return f"{stage}: {type(exc).__name__}: {str(exc).strip()}"


class _Recorder:
    """Collects rows, measurements and exceptions and reports progress."""

    def __init__(self, total: int, progress: SweepProgress | None, on_row: Callable[[SweepResult], Any] | None = None) -> None:
        self.result = SweepResult(total=total)
        self.progress = progress
        self.on_row = on_row

    def add(self, label: str, cell: _Cell, measurement: Measurement | None, error: tuple[str, BaseException] | None) -> None:
        key = (label, cell.batch, cell.seq)
        if measurement is not None:
            self.result.rows.append(SweepRow.from_measurement(label, cell.batch, cell.seq, measurement))
            self.result.measurements[key] = measurement
        else:
            stage, exc = error  # type: ignore[misc]
            self.result.rows.append(SweepRow(label, cell.batch, cell.seq, error=_error_text(stage, exc)))
            self.result.exceptions[key] = exc
        if self.progress is not None:
            seq = f" seq={cell.seq}" if cell.seq is not None else ""
            self.progress(len(self.result.rows), self.result.total, f"{label} batch={cell.batch}{seq}")
        if self.on_row is not None:
            fill_speedups(self.result.rows)
            self.on_row(self.result)


def _measure(target: Any, label: str, cell: _Cell, rec: _Recorder, open_error: BaseException | None,
             **kwargs: Any) -> None:
    if cell.error is not None:
        rec.add(label, cell, None, ("inputs", cell.error))
        return
    if open_error is not None:
        rec.add(label, cell, None, ("session", open_error))
        return
    inputs = cell.inputs if label == EAGER else cell.feed
    try:
        m = benchmark(target, inputs, label=label, batch_size=cell.batch, flops=cell.flops, **kwargs)
    except Exception as exc:  # captured as a row: one failing cell does not stop the sweep
        rec.add(label, cell, None, ("run", exc))
    else:
        rec.add(label, cell, m, None)


def sweep(
    model: nn.Module | None,
    onnx_model: OnnxModel,
    *,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int | None] = (None,),
    configs: Sequence[SessionConfig] | SessionConfig | None = None,
    include_eager: bool = True,
    input_factory: InputFactory | None = None,
    spec: ExportSpec | None = None,
    example_inputs: Any = None,
    warmup: int = 5,
    runs: int | None = None,
    min_time: float | None = None,
    threads: int | None = None,
    progress: SweepProgress | None = None,
    cancel: Cancel = None,
    on_row: Callable[[SweepResult], Any] | None = None,
) -> SweepResult:
    """Time eager ``model`` and ``onnx_model`` (a path) under each ``SessionConfig`` (default: one
    ``SessionConfig()``) at every (batch, seq) in ``batch_sizes`` x ``seq_lens``.

    Inputs come from ``input_factory(batch=, seq=)`` (e.g. ``case.make_inputs``), or from
    ``example_inputs`` resized along the spec's first (batch) and second (sequence) dynamic-axis
    symbols; ``seq_lens=[None]`` for models without a sequence axis. One session per config is
    opened, reused across the shapes and released before the next. Eager runs with ``threads``
    torch threads (default: the configs' common ``intra_op_threads``, else torch's current
    count). ``progress(done, total, label)`` is called after each cell. ``cancel`` (an Event or a
    callable) is checked before each cell; once set, the rows so far are returned with
    ``cancelled=True``. A cell that fails becomes a row with ``error`` set; nothing is raised for
    it. ``on_row(result)`` gets the ``SweepResult`` so far (speedups filled) after each cell.
    """
    if include_eager:
        check_module(model)
    path = check_onnx_path(onnx_model)
    batches = _check_sizes(batch_sizes, "batch_sizes", allow_none=False)
    seqs = _check_sizes(seq_lens, "seq_lens", allow_none=True)
    labelled = _check_configs((SessionConfig(),) if configs is None else configs)
    if not labelled and not include_eager:
        raise InvalidInputError("Nothing to measure: configs is empty and include_eager=False. Pass a SessionConfig.")
    check_cancel(cancel)
    runs, min_time = check_budget(warmup, runs, min_time, default_runs=SWEEP_RUNS)
    make = _input_maker(input_factory, spec, example_inputs, seqs)
    proto = load_model(path, load_external_data=False)
    cells = _prepare_cells([(b, s) for b in batches for s in seqs], make, proto, spec)
    del proto
    plan: list[tuple[str, SessionConfig | None]] = ([(EAGER, None)] if include_eager else []) + list(labelled)
    eager_threads = _eager_threads(labelled, threads)
    rec = _Recorder(len(plan) * len(cells), progress, on_row)
    for label, config in plan:
        budget = {"warmup": warmup, "runs": runs, "min_time": min_time,
                  "threads": eager_threads if config is None else None}
        if not _sweep_one(model, path, label, config, cells, rec, cancel, **budget):
            break
    result = rec.result
    result.cancelled = len(result.rows) < result.total
    fill_speedups(result.rows)
    return result


def _sweep_one(model: nn.Module | None, path: Path, label: str, config: SessionConfig | None, cells: list[_Cell],
               rec: _Recorder, cancel: Cancel, **kwargs: Any) -> bool:
    """All shapes of one config (or of eager) on one session, released at the end.

    Returns ``False`` if cancelled before the last shape."""
    if is_cancelled(cancel):
        return False
    target: Any = model
    open_error: BaseException | None = None
    if config is not None:
        try:
            target = open_session(path, config)
        except Exception as exc:  # captured: every shape of this config becomes an error row
            target, open_error = None, exc
    try:
        for cell in cells:
            if is_cancelled(cancel):
                return False
            _measure(target, label, cell, rec, open_error, **kwargs)
    finally:
        del target
        gc.collect()
    return True
