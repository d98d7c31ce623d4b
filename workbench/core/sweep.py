"""``sweep()``: latency of eager PyTorch and ONNX Runtime configs over batch sizes and sequence
lengths. Each cell (batch, seq) measures eager and every config interleaved in short blocks
(``sweep_cells.py`` on ``paired.py``), so each speed-up is a ratio taken under the same machine
conditions, with a bootstrap confidence interval and a verdict; failures are kept as rows and a
cooperative cancel stops between blocks.

The rows and the result live in ``sweep_results.py``.
"""

from __future__ import annotations

import gc
import math
from typing import Any, Callable, Sequence

import onnx
import torch
from torch import nn

from workbench.core._checks import is_int, is_number
from workbench.core._io import OnnxModel, check_onnx_path, load_model
from workbench.core.bench import check_budget
from workbench.core.cancel import Cancel, check_cancel, is_cancelled
from workbench.core.feeds import by_graph_name
from workbench.core.flops import graph_flops, graph_precision
from workbench.core.graph import graph_inputs
from workbench.core.inputs import as_input_tuple, axis_symbols, check_module, resize_batch_seq
from workbench.core.paired import MIN_CI_ROUNDS
from workbench.core.session import SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.core.sweep_cells import Cell, Knobs, Recorder, SweepProgress, Target, measure_cell
from workbench.core.sweep_results import EAGER, SweepResult, SweepRow, fill_speedups
from workbench.errors import InvalidInputError, describe

__all__ = ["EAGER", "SweepProgress", "SweepResult", "SweepRow", "sweep"]

#: Kept calls per target and cell, at least (with ``block=5``: 6 rounds; see ``paired.MIN_CI_ROUNDS``).
SWEEP_RUNS = 24
#: The least number of rounds a cell runs, whatever ``runs`` says: fewer give no interval.
MIN_ROUNDS = MIN_CI_ROUNDS
#: Seconds a cell may take (all its targets together) before it stops without a tight interval.
CELL_BUDGET_S = 2.0
#: A cell stops early once every speed-up's 95% interval is within this fraction each side.
REL_CI = 0.05
BLOCK = 5
MAX_ROUNDS = 200
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


def _prepare_cells(
    shapes: list[tuple[int, int | None]], make: Callable[[int, int | None], tuple[torch.Tensor, ...]],
    proto: onnx.ModelProto, spec: ExportSpec | None,
) -> list[Cell]:
    names = [v.name for v in graph_inputs(proto.graph)]
    cells = []
    for b, s in shapes:
        cell = Cell(b, s)
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


def _knobs(warmup: int, runs: int | None, min_time: float | None, block: Any, cell_budget_s: Any, rel_ci: Any,
           n_targets: int, eager_threads: int | None) -> Knobs:
    """How each cell is measured: ``runs`` kept calls per target at least, then until the intervals are
    within ``rel_ci`` or ``cell_budget_s`` is spent; ``min_time`` instead: that long per target, no early stop."""
    if not is_int(block, 2):
        raise InvalidInputError(f"block must be an int >= 2 (each block's first call is dropped), received {block!r}.")
    if not (is_number(cell_budget_s) and cell_budget_s > 0):
        raise InvalidInputError(f"cell_budget_s must be a number of seconds > 0, received {cell_budget_s!r}. Try 2.")
    if not (is_number(rel_ci) and rel_ci > 0):
        raise InvalidInputError(f"rel_ci must be a number > 0 (0.05: within 5% each side), received {rel_ci!r}.")
    if min_time is not None:
        return Knobs(warmup, block, MIN_ROUNDS, 10**9, min_time * max(1, n_targets), 1e-12, eager_threads)
    min_rounds = max(MIN_ROUNDS, math.ceil(runs / (block - 1)))  # type: ignore[operator]
    return Knobs(warmup, block, min_rounds, max(min_rounds, MAX_ROUNDS), float(cell_budget_s), float(rel_ci),
                 eager_threads)


def _cells_of(path: Any, batches: list[int | None], seqs: list[int | None],
              make: Callable[[int, int | None], tuple[torch.Tensor, ...]], spec: ExportSpec | None
              ) -> tuple[list[Cell], str]:
    """The grid's cells (inputs, feeds, FLOPs) and the graph's precision, from one read of the graph."""
    proto = load_model(path, load_external_data=False)
    return _prepare_cells([(b, s) for b in batches for s in seqs], make, proto, spec), graph_precision(proto)


def _open_targets(path: Any, labelled: list[tuple[str, SessionConfig]], include_eager: bool) -> list[Target]:
    """Eager (first) and one session per config, all open for the whole sweep (they run in turns)."""
    targets = [Target(EAGER, None)] if include_eager else []
    for label, config in labelled:
        try:
            targets.append(Target(label, config, session=open_session(path, config)))
        except Exception as exc:  # captured: every shape of this config becomes an error row
            targets.append(Target(label, config, open_error=exc))
    return targets


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
    cell_budget_s: float = CELL_BUDGET_S,
    rel_ci: float = REL_CI,
    block: int = BLOCK,
) -> SweepResult:
    """Time eager ``model`` and ``onnx_model`` (a path) under each ``SessionConfig`` (default: one
    ``SessionConfig()``) at every (batch, seq) in ``batch_sizes`` x ``seq_lens``.

    In each cell, eager and every config run in turns, ``block`` calls at a time (each block's first
    call dropped), ``warmup`` untimed calls each first: at least ``runs`` kept calls per target
    (default 24), then more rounds until every speed-up's 95% bootstrap interval is within
    ``rel_ci`` each side or the cell has run ``cell_budget_s`` seconds (``min_time`` instead:
    about that many seconds per target, no early stop). A speed-up whose interval holds 1.0 is
    marked "no clear difference" (``SweepRow.verdict``).

    Inputs come from ``input_factory(batch=, seq=)`` (e.g. ``case.make_inputs``), or from
    ``example_inputs`` resized along the spec's first (batch) and second (sequence) dynamic-axis
    symbols; ``seq_lens=[None]`` for models without a sequence axis. One session per config is
    opened for the whole sweep. Eager runs with ``threads`` torch threads (default: the configs'
    common ``intra_op_threads``, else torch's current count). ``progress(done, total, label)`` is
    called after each row; ``on_row(result)`` gets the ``SweepResult`` so far after each cell.
    ``cancel`` (an Event or a callable) is checked before each block; once set, the complete cells
    so far are returned with ``cancelled=True``. A failed cell is a row with ``error`` set.
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
    knobs = _knobs(warmup, runs, min_time, block, cell_budget_s, rel_ci, len(labelled) + include_eager,
                   _eager_threads(labelled, threads))
    cells, precision = _cells_of(path, batches, seqs, _input_maker(input_factory, spec, example_inputs, seqs), spec)
    rec = Recorder((len(labelled) + include_eager) * len(cells), progress, on_row, precision)
    targets = _open_targets(path, labelled, include_eager) if not is_cancelled(cancel) else []
    return _run(model, cells, targets, knobs, rec, cancel)


def _run(model: nn.Module | None, cells: list[Cell], targets: list[Target], knobs: Knobs, rec: Recorder,
         cancel: Cancel) -> SweepResult:
    """Measure the cells one after the other; the sessions are released at the end."""
    try:
        for cell in cells:
            if not targets or is_cancelled(cancel) or not measure_cell(model, cell, targets, knobs, rec, cancel):
                break
    finally:
        targets.clear()
        gc.collect()
    result = rec.result
    result.cancelled = len(result.rows) < result.total
    fill_speedups(result.rows)
    return result
