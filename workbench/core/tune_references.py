"""PyTorch's own answers, measured beside the tuner's candidates: eager, ``torch.compile`` and dynamic INT8.

Each reference is a set of no-argument calls, one per grid shape, run inside ``torch_context`` (torch's
thread count set to the candidates' and held, the shared torch lock, ``torch.inference_mode``).
``torch.compile`` compiles per shape on its first call: that time counts against the tune budget, and
the reference is skipped, with the reason, when it fails or would not fit.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from workbench.core._locks import TORCH_LOCK
from workbench.core.bench import torch_threads
from workbench.core.feeds import flatten_outputs, to_numpy
from workbench.core.tune_results import Shape, ShapeTiming, shape_text
from workbench.errors import brief

__all__ = ["RefRunner", "compile_reference", "eager_reference", "torch_context", "torch_int8_reference"]


@contextlib.contextmanager
def torch_context(threads: int) -> Iterator[None]:
    """Torch at ``threads`` threads, the shared torch lock held, inference mode: where PyTorch is timed."""
    with torch_threads(threads), TORCH_LOCK.shared(), torch.inference_mode():
        yield


@dataclass
class RefRunner:
    """One reference's calls per shape, or the reason it could not run."""

    name: str
    calls: dict[Shape, Callable[[], Any]] = field(default_factory=dict)
    error: str | None = None
    setup_s: float = 0.0
    max_abs_error: float | None = None
    timings: list[ShapeTiming] = field(default_factory=list)


def _outputs(fn: Callable[[], Any]) -> list[np.ndarray]:
    return [to_numpy(t) for t in flatten_outputs(fn())]


def _max_abs(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    return max((float(np.max(np.abs(e.astype(np.float64) - a.astype(np.float64)))) if e.size else 0.0)
               for e, a in zip(expected, actual))


def eager_reference(model: nn.Module, inputs: dict[Shape, tuple[torch.Tensor, ...]]) -> RefRunner:
    """``model(*inputs)`` per shape (the ratio every speed-up is measured against)."""
    return RefRunner("eager", {shape: functools.partial(model, *x) for shape, x in inputs.items()})


def _check_against(ref: RefRunner, expected: dict[Shape, list[np.ndarray]], threads: int) -> None:
    """Run each call once; record the largest absolute error against eager's outputs."""
    errors = []
    with torch_context(threads):
        for shape, call in ref.calls.items():
            errors.append(_max_abs(expected[shape], _outputs(call)))
    ref.max_abs_error = max(errors) if errors else None


def compile_reference(model: nn.Module, inputs: dict[Shape, tuple[torch.Tensor, ...]],
                      expected: dict[Shape, list[np.ndarray]], threads: int, time_left: Callable[[], float]
                      ) -> RefRunner:
    """``torch.compile(model)`` (inductor, CPU), compiled per shape now; skipped when a compile fails or the
    next one would not fit in ``time_left()`` seconds (estimated from the first)."""
    ref = RefRunner("torch.compile")
    if time_left() < 20:
        ref.error = f"skipped: {time_left():.0f} s of the budget left, too little to compile"
        return ref
    start = time.perf_counter()
    try:
        compiled = torch.compile(model, backend="inductor", dynamic=False)
        for shape, x in inputs.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings(), torch_context(threads):
                warnings.simplefilter("ignore")
                compiled(*x)
            if time.perf_counter() - t0 > time_left() and shape != list(inputs)[-1]:
                ref.error = (f"skipped: compiling took {time.perf_counter() - t0:.0f} s at {shape_text(shape)}; "
                             "the other shapes' compiles would not fit in the budget")
                break
            ref.calls[shape] = functools.partial(compiled, *x)
    except Exception as exc:
        ref.error = f"torch.compile failed: {type(exc).__name__}: {brief(str(exc), 300)}"
    ref.setup_s = time.perf_counter() - start
    if ref.error:
        ref.calls.clear()
        return ref
    _check_against(ref, expected, threads)
    return ref


def _without_fastpath(model: nn.Module, *inputs: torch.Tensor) -> Any:
    """``model(*inputs)`` with PyTorch's fused MHA/encoder fast path off: it reads ``linear1.weight`` as a tensor,
    which a dynamically quantized Linear no longer has (a method there). Restored after the call."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        return model(*inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def torch_int8_reference(model: nn.Module, inputs: dict[Shape, tuple[torch.Tensor, ...]],
                         expected: dict[Shape, list[np.ndarray]], threads: int) -> RefRunner:
    """``torch.ao.quantization.quantize_dynamic`` (nn.Linear to qint8), where the model has linear layers."""
    ref = RefRunner("torch int8")
    if not any(type(m) is nn.Linear for m in model.modules()):
        ref.error = "skipped: the model has no nn.Linear for torch's dynamic INT8"
        return ref
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), TORCH_LOCK.shared():
            warnings.simplefilter("ignore")
            quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        ref.calls = {shape: functools.partial(_without_fastpath, quantized, *x) for shape, x in inputs.items()}
        _check_against(ref, expected, threads)
    except Exception as exc:
        ref.error = f"torch dynamic INT8 failed: {type(exc).__name__}: {brief(str(exc), 300)}"
        ref.calls.clear()
    ref.setup_s = time.perf_counter() - start
    return ref
