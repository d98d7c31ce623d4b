"""``sweep()``: latency of eager PyTorch and ONNX Runtime configs over batch sizes and sequence
lengths, one ``benchmark()`` per cell, with failures kept as rows and a cooperative cancel.

Split from ``bench.py`` (which holds ``Measurement`` and ``benchmark``) to keep both small.
"""

from __future__ import annotations

import gc
import math
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import onnx
import torch
from torch import nn

from workbench.core._format import badge, fmt_time, html_table, text_table
from workbench.core._io import PathLike, check_onnx_path, load_model
from workbench.core.bench import Measurement, benchmark, check_budget
from workbench.core.flops import graph_flops
from workbench.core.inputs import as_input_tuple, axis_symbols, check_module, resize_inputs
from workbench.core.session import SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError, describe

EAGER = "eager"
SWEEP_RUNS = 20

Progress = Callable[[int, int, str], Any]
Cancel = Union[threading.Event, Callable[[], bool], None]
InputFactory = Callable[..., Any]
CellKey = tuple[str, int, Union[int, None]]


@dataclass
class SweepRow:
    """One cell of a sweep: a config (or ``eager``) at one batch size and sequence length.

    Times are seconds; ``throughput`` is items/s (batch / p50); ``speedup`` is eager's p50
    over this row's p50 at the same shape (``None`` without an eager row); ``gflops`` is
    achieved GFLOP/s from the graph's FLOPs (``None`` when they are unknown). A failed
    cell has ``error`` set and NaN times.
    """

    config: str
    batch: int
    seq: int | None
    p50: float = math.nan
    p90: float = math.nan
    p95: float = math.nan
    p99: float = math.nan
    mean: float = math.nan
    throughput: float = math.nan
    speedup: float | None = None
    flops: int | None = None
    gflops: float | None = None
    noisy: bool | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_measurement(cls, config: str, batch: int, seq: int | None, m: Measurement) -> SweepRow:
        return cls(config, batch, seq, p50=m.p50, p90=m.p90, p95=m.p95, p99=m.p99, mean=m.mean,
                   throughput=m.throughput, flops=m.flops, gflops=m.gflops, noisy=m.noisy)


_COLUMNS = ["config", "batch", "seq", "p50", "p90", "p99", "items/s", "speedup", "GFLOP/s", "note"]


def _cells(row: SweepRow) -> list[Any]:
    if not row.ok:
        return [row.config, row.batch, row.seq if row.seq is not None else "-", "", "", "", "", "", "",
                "ERROR " + (row.error or "")[:100]]
    return [
        row.config, row.batch, row.seq if row.seq is not None else "-",
        fmt_time(row.p50), fmt_time(row.p90), fmt_time(row.p99), f"{row.throughput:.4g}",
        f"{row.speedup:.2f}x" if row.speedup is not None else "-",
        f"{row.gflops:.3g}" if row.gflops is not None else "-", "noisy" if row.noisy else "",
    ]


@dataclass(eq=False)
class SweepResult:
    """Rows of a sweep (in run order: eager first, then each config over all shapes), the
    ``Measurement`` of each successful cell, and whether the sweep was cancelled midway."""

    rows: list[SweepRow] = field(default_factory=list)
    measurements: dict[CellKey, Measurement] = field(default_factory=dict, repr=False)
    exceptions: dict[CellKey, BaseException] = field(default_factory=dict, repr=False)
    total: int = 0
    cancelled: bool = False

    @property
    def errors(self) -> list[SweepRow]:
        return [r for r in self.rows if not r.ok]

    def measurement(self, config: str, batch: int, seq: int | None = None) -> Measurement:
        """The ``Measurement`` of one cell (``config`` is a label as in the rows, or ``'eager'``)."""
        try:
            return self.measurements[(config, batch, seq)]
        except KeyError:
            have = sorted({k[0] for k in self.measurements})
            raise InvalidInputError(
                f"No measurement for config={config!r}, batch={batch}, seq={seq}. Measured configs: {have}; "
                "failed or cancelled cells have no measurement (see .errors)."
            ) from None

    def to_pandas(self) -> Any:
        """One row per cell; the columns are ``SweepRow``'s fields."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in fields(SweepRow)])

    def to_csv(self, path: PathLike) -> Path:
        """Write ``to_pandas()`` as CSV; returns the path."""
        target = Path(path)
        self.to_pandas().to_csv(target, index=False)
        return target

    def _status(self) -> str:
        text = f"{len(self.rows)}/{self.total} cells"
        if self.cancelled:
            text += ", cancelled"
        return text + (f", {len(self.errors)} failed" if self.errors else "")

    def __repr__(self) -> str:
        return f"SweepResult({self._status()})\n" + text_table(_COLUMNS, [_cells(r) for r in self.rows])

    def _repr_html_(self) -> str:
        flag = badge(None, "CANCELLED") if self.cancelled else badge(not self.errors, "FAILURES" if self.errors else "DONE")
        return f"<div>{flag} {self._status()}{html_table(_COLUMNS, [_cells(r) for r in self.rows])}</div>"


# ---------------------------------------------------------------------------------------------
# Checking the arguments
# ---------------------------------------------------------------------------------------------


def _check_sizes(values: Any, what: str, *, allow_none: bool) -> list[int | None]:
    items = list(values) if isinstance(values, (list, tuple, range)) else None
    ok = bool(items) and all(
        (v is None and allow_none) or (isinstance(v, int) and not isinstance(v, bool) and v >= 1) for v in items
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


def _check_cancel(cancel: Any) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event) or hasattr(cancel, "is_set"):
        return cancel.is_set
    if callable(cancel):
        return lambda: bool(cancel())
    raise InvalidInputError(
        f"cancel must be a threading.Event or a callable returning bool, received {describe(cancel)}."
    )


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
            "sweep needs a way to make inputs at each size: pass input_factory=zoo_model.make_inputs, "
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

    def make(b: int, s: int | None) -> tuple[torch.Tensor, ...]:
        sizes = {symbols[0]: b} if s is None else {symbols[0]: b, symbols[1]: s}
        return resize_inputs(examples, spec.input_names, spec.dynamic_axes, sizes)

    return make


def _graph_inputs(proto: onnx.ModelProto) -> list[str]:
    initializers = {t.name for t in proto.graph.initializer}
    return [v.name for v in proto.graph.input if v.name not in initializers]


def _by_name(inputs: tuple[torch.Tensor, ...], onnx_names: list[str], spec: ExportSpec | None) -> dict[str, torch.Tensor]:
    """Inputs keyed by ONNX input name: by the spec's names where they cover the graph, else in order."""
    if spec is not None and set(onnx_names) <= set(spec.input_names[: len(inputs)]):
        named = dict(zip(spec.input_names, inputs))
        return {n: named[n] for n in onnx_names}
    if len(inputs) != len(onnx_names):
        raise InvalidInputError(
            f"The graph has inputs {onnx_names}, received {len(inputs)} tensors {[describe(t) for t in inputs]}. "
            "Pass spec= with the input names, or an input_factory that makes exactly the graph's inputs."
        )
    return dict(zip(onnx_names, inputs))


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
    names = _graph_inputs(proto)
    cells = []
    for b, s in shapes:
        cell = _Cell(b, s)
        try:
            cell.inputs = make(b, s)
            cell.feed = _by_name(cell.inputs, names, spec)
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

    def __init__(self, total: int, progress: Progress | None, on_row: Callable[[SweepResult], Any] | None = None) -> None:
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
            _fill_speedups(self.result.rows)
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


def _fill_speedups(rows: list[SweepRow]) -> None:
    eager = {(r.batch, r.seq): r.p50 for r in rows if r.config == EAGER and r.ok}
    for row in rows:
        base = eager.get((row.batch, row.seq))
        if row.ok and base is not None and row.p50 > 0:
            row.speedup = base / row.p50


def sweep(
    model: nn.Module | None,
    onnx_path: PathLike,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int | None] = (None,),
    configs: Sequence[SessionConfig] | SessionConfig = (SessionConfig(),),
    *,
    include_eager: bool = True,
    input_factory: InputFactory | None = None,
    spec: ExportSpec | None = None,
    example_inputs: Any = None,
    warmup: int = 5,
    runs: int | None = None,
    min_time: float | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cancel: Cancel = None,
    on_row: Callable[[SweepResult], Any] | None = None,
) -> SweepResult:
    """Time eager ``model`` and ``onnx_path`` under each ``SessionConfig`` at every
    (batch, seq) in ``batch_sizes`` x ``seq_lens``.

    Inputs come from ``input_factory(batch=, seq=)``, or from ``example_inputs`` resized along
    the spec's first (batch) and second (sequence) dynamic-axis symbols; ``seq_lens=[None]``
    for models without a sequence axis. One session per config is opened, reused across the
    shapes and released before the next. Eager runs with ``threads`` torch threads (default:
    the configs' common ``intra_op_threads``, else torch's current count). ``progress(done,
    total, label)`` is called after each cell. ``cancel`` (an Event or a callable) is checked
    before each cell; once set, the rows so far are returned with ``cancelled=True``. A
    cell that fails becomes a row with ``error`` set; nothing is raised for it. ``on_row(result)``
    gets the ``SweepResult`` so far (speedups filled) after each cell, for plots that fill in live.
    """
    if include_eager:
        check_module(model)
    path = check_onnx_path(onnx_path)
    batches = _check_sizes(batch_sizes, "batch_sizes", allow_none=False)
    seqs = _check_sizes(seq_lens, "seq_lens", allow_none=True)
    labelled = _check_configs(configs)
    if not labelled and not include_eager:
        raise InvalidInputError("Nothing to measure: configs is empty and include_eager=False. Pass a SessionConfig.")
    is_cancelled = _check_cancel(cancel)
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
        if not _sweep_one(model, path, label, config, cells, rec, is_cancelled, **budget):
            break
    result = rec.result
    result.cancelled = len(result.rows) < result.total
    _fill_speedups(result.rows)
    return result


def _sweep_one(model: nn.Module | None, path: Path, label: str, config: SessionConfig | None, cells: list[_Cell],
               rec: _Recorder, is_cancelled: Callable[[], bool], **kwargs: Any) -> bool:
    """All shapes of one config (or of eager) on one session, released at the end.

    Returns ``False`` if cancelled before the last shape."""
    if is_cancelled():
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
            if is_cancelled():
                return False
            _measure(target, label, cell, rec, open_error, **kwargs)
    finally:
        del target
        gc.collect()
    return True
