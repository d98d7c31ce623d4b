"""Latency: ``benchmark()``, the one timing helper, times any target into a ``Measurement``
(``measurement.py``); ``sweep()`` (``sweep.py``) runs it over a grid of shapes and configs.

Each call is timed alone with ``time.perf_counter_ns`` and every time is kept, so the
percentiles, the spread and the noise verdict are computed from the raw numbers, as in
``torch.utils.benchmark.Measurement``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from workbench.core._checks import is_int, is_number
from workbench.core._io import is_path
from workbench.core._locks import TORCH_LOCK
from workbench.core.feeds import build_feed
from workbench.core.inputs import as_input_tuple, check_inputs_fit
from workbench.core.ort_errors import explain_run_error
from workbench.core.measurement import NOISE_THRESHOLD, Measurement
from workbench.core.session import SessionConfig, open_session
from workbench.errors import InvalidInputError, WorkbenchError, describe

__all__ = ["DEFAULT_RUNS", "NOISE_THRESHOLD", "Measurement", "benchmark", "check_budget", "module_call", "timing_error",
           "torch_threads"]

DEFAULT_RUNS = 50


# ---------------------------------------------------------------------------------------------
# benchmark()
# ---------------------------------------------------------------------------------------------


def check_budget(
    warmup: Any, runs: Any, min_time: Any, *, default_runs: int = DEFAULT_RUNS
) -> tuple[int | None, float | None]:
    """Validated ``(runs, min_time)``: exactly one is set (``runs=default_runs`` if neither was)."""
    if not is_int(warmup, 0):
        raise InvalidInputError(f"warmup must be an int >= 0, received {warmup!r}. Try warmup=10.")
    if runs is not None and min_time is not None:
        raise InvalidInputError(
            f"Pass either runs (a count) or min_time (seconds), not both; received runs={runs!r}, "
            f"min_time={min_time!r}."
        )
    if runs is None and min_time is None:
        return default_runs, None
    if runs is not None and not is_int(runs, 1):
        raise InvalidInputError(f"runs must be an int >= 1, received {runs!r}. Try runs={DEFAULT_RUNS}.")
    if min_time is not None and not (is_number(min_time) and min_time > 0):
        raise InvalidInputError(f"min_time must be a number of seconds > 0, received {min_time!r}. Try min_time=1.0.")
    return runs, (float(min_time) if min_time is not None else None)


def _time_calls(call: Callable[[], Any], warmup: int, runs: int | None, min_time: float | None) -> list[float]:
    """Call ``call`` ``warmup`` times, then time each call: ``runs`` of them, or until ``min_time``."""
    for _ in range(warmup):
        call()
    clock = time.perf_counter_ns
    if runs is not None:
        ns = [0] * runs
        for i in range(runs):
            start = clock()
            call()
            ns[i] = clock() - start
    else:
        ns = []
        append = ns.append
        budget, spent = int(min_time * 1e9), 0  # type: ignore[operator]
        while spent < budget:
            start = clock()
            call()
            elapsed = clock() - start
            append(elapsed)
            spent += elapsed
    return [t / 1e9 for t in ns]


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(threads)`` and restore the count afterwards; yield the count.

    Torch's thread count is process state (with OpenMP also per thread), so a block that changes it
    holds ``TORCH_LOCK`` exclusively: calls on other threads wait instead of overlapping, and each
    block restores, in its own thread, the count it found. ``threads=None`` changes nothing and
    takes no lock.
    """
    if threads is not None and not is_int(threads, 1):
        raise InvalidInputError(f"threads must be an int >= 1 or None, received {threads!r}.")
    if threads is None:
        yield torch.get_num_threads()
        return
    with TORCH_LOCK.exclusive():
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield threads
        finally:
            torch.set_num_threads(previous)


def _to_tensor(value: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value


def _on_cuda(model: nn.Module, tensors: Any) -> bool:
    first = next(model.parameters(), None)
    return (first is not None and first.is_cuda) or any(getattr(t, "is_cuda", False) for t in tensors)


def _synchronized(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` followed by ``torch.cuda.synchronize()``, so a CUDA call is timed to its end."""
    synchronize = torch.cuda.synchronize

    def run() -> Any:
        out = call()
        synchronize()
        return out

    return run


def module_call(model: nn.Module, inputs: Any) -> Callable[[], Any]:
    """A no-argument call of ``model`` on ``inputs`` (positional, or keyword from a dict)."""
    if isinstance(inputs, Mapping):
        kwargs = {k: _to_tensor(v) for k, v in inputs.items()}
        call: Callable[[], Any] = functools.partial(model, **kwargs)
        tensors: Any = kwargs.values()
    else:
        values = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        tensors = as_input_tuple(tuple(_to_tensor(v) for v in values), what="inputs")
        check_inputs_fit(model, tensors)
        call = functools.partial(model, *tensors)
    return _synchronized(call) if _on_cuda(model, tensors) else call


def _session_threads(session: ort.InferenceSession, threads: int | None) -> int | None:
    """The session's intra-op thread count (``None`` when ONNX Runtime chose it)."""
    own = session.get_session_options().intra_op_num_threads or None
    if threads is not None and threads != own:
        raise InvalidInputError(
            f"threads={threads!r}, but this session was built with intra_op_threads={own or 0} "
            "(0 = ONNX Runtime's choice), and a session's thread count cannot change. Build it with "
            f"wb.open_session(path, wb.SessionConfig(intra_op_threads={threads})), or leave threads=None."
        )
    return own


def _check_not_empty(inputs: Any) -> None:
    empty = inputs is None or (isinstance(inputs, (tuple, list, Mapping)) and len(inputs) == 0)
    if empty:
        raise InvalidInputError(
            f"inputs is empty ({describe(inputs)}). Pass the model's inputs: a tensor, a tuple of "
            "tensors or arrays, or a dict of ONNX input name -> array."
        )


def _callable_call(target: Callable[..., Any], inputs: Any) -> Callable[[], Any]:
    """A no-argument call of any callable: ``target()``, ``target(*inputs)`` or ``target(**inputs)``."""
    if inputs is None:
        return target
    if isinstance(inputs, Mapping):
        return functools.partial(target, **inputs)
    return functools.partial(target, *inputs) if isinstance(inputs, (tuple, list)) else functools.partial(target, inputs)


def _as_session(target: Any, config: SessionConfig | None, threads: int | None) -> ort.InferenceSession:
    """``target`` as a session: a session as it is, a path or ``ModelProto`` opened with ``config``."""
    if isinstance(target, ort.InferenceSession):
        if config is not None:
            raise InvalidInputError(
                "config= applies when benchmark opens the model (a path or ModelProto); this session is already "
                "built. Pass the path instead, or leave config=None."
            )
        return target
    if config is None and threads is not None:
        config = SessionConfig(intra_op_threads=threads)
    return open_session(target, config)


def _ort_label(session: ort.InferenceSession) -> str:
    return "ort:" + "+".join(p.replace("ExecutionProvider", "") for p in session.get_providers())


def benchmark(
    target: Any,
    inputs: Any = None,
    *,
    warmup: int = 10,
    runs: int | None = None,
    min_time: float | None = None,
    threads: int | None = None,
    label: str | None = None,
    batch_size: int | None = None,
    flops: int | None = None,
    config: SessionConfig | None = None,
) -> Measurement:
    """Time ``target`` on ``inputs``: ``warmup`` untimed calls, then ``runs`` timed calls
    (default 50) or as many as fill ``min_time`` seconds. The one timing helper.

    ``target`` is an ``onnxruntime.InferenceSession``, or an ONNX model (a path or ``ModelProto``,
    opened with ``config``; ``threads`` without ``config`` sets ``intra_op_threads``): inputs are
    converted once to a numpy feed by the session's input names, and ``threads`` may only repeat
    the session's own count. An ``nn.Module`` runs under ``torch.inference_mode`` with
    ``torch.set_num_threads(threads)`` (restored afterwards). Any other callable is called as
    ``target()`` when ``inputs`` is None, else ``target(*inputs)`` / ``target(**inputs)``.
    """
    runs, min_time = check_budget(warmup, runs, min_time)
    if isinstance(target, (ort.InferenceSession, onnx.ModelProto)) or is_path(target):
        _check_not_empty(inputs)
        session = _as_session(target, config, threads)
        used = _session_threads(session, threads)
        feed = build_feed(session, inputs)
        call = functools.partial(session.run, None, feed)
        name = label or _ort_label(session)
        times, cpu = _run_guarded(call, warmup, runs, min_time, name, session=session, feed=feed)
    elif isinstance(target, nn.Module) or callable(target):
        if config is not None:
            raise InvalidInputError("config= is for ONNX models (a path or ModelProto); leave it None for "
                                    f"{type(target).__name__}.")
        if isinstance(target, nn.Module):
            _check_not_empty(inputs)
            call, name = module_call(target, inputs), label or f"eager:{type(target).__name__}"
        else:
            call, name = _callable_call(target, inputs), label or getattr(target, "__name__", "call")
        # A module runs with TORCH_LOCK shared: never while an export has it (see core/_locks.py).
        guard = TORCH_LOCK.shared() if isinstance(target, nn.Module) else contextlib.nullcontext()
        with torch_threads(threads) as used, guard, torch.inference_mode():
            times, cpu = _run_guarded(call, warmup, runs, min_time, name)
    else:
        raise InvalidInputError(
            f"target must be an nn.Module, an onnxruntime.InferenceSession, an ONNX model (a path or ModelProto) "
            f"or a callable, received {describe(target)}."
        )
    return Measurement(name, times, batch_size=batch_size, flops=flops, threads=used, warmup=warmup,
                       cpu_per_call=cpu / (warmup + len(times)))


def _run_guarded(call: Callable[[], Any], warmup: int, runs: int | None, min_time: float | None,
                 name: str, *, session: ort.InferenceSession | None = None, feed: Any = None
                 ) -> tuple[list[float], float]:
    """The per-call times and the CPU time the whole process spent (warmup included)."""
    try:
        cpu = time.process_time()
        times = _time_calls(call, warmup, runs, min_time)
        return times, time.process_time() - cpu
    except WorkbenchError:
        raise
    except Exception as exc:
        raise timing_error(exc, name, session=session, feed=feed) from exc


def timing_error(exc: BaseException, name: str, *, session: ort.InferenceSession | None = None,
                 feed: Any = None) -> WorkbenchError:
    """The ``WorkbenchError`` to raise for ``exc`` from a timed call of ``name`` (as it is if it is one)."""
    if isinstance(exc, WorkbenchError):
        return exc
    if session is not None:  # ONNX Runtime's own error: say which input or node, and what to do
        return explain_run_error(exc, session, feed)
    return InvalidInputError(
        f"{name} failed while being timed: {type(exc).__name__}: {str(exc).strip()[:800]}. "
        "Run it once by hand on the same inputs to check they fit the model."
    )
