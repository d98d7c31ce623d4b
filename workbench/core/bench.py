"""Latency: ``benchmark()`` times one target into a ``Measurement``; ``sweep()`` times eager
PyTorch and ONNX Runtime configs over a grid of batch sizes and sequence lengths.

Each call is timed alone with ``time.perf_counter_ns`` and every time is kept, so the
percentiles, the spread and the noise verdict are computed from the raw numbers, as in
``torch.utils.benchmark.Measurement``.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from workbench.core._format import badge, fmt_time, html_table
from workbench.core.compare import build_feed
from workbench.core.inputs import as_input_tuple, check_inputs_fit
from workbench.errors import InvalidInputError, WorkbenchError, describe

#: A run is called noisy when its interquartile range is more than this fraction of its median.
NOISE_THRESHOLD = 0.1
DEFAULT_RUNS = 50


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Measurement:
    """Raw per-call times of one target and the statistics computed from them (lazily).

    ``raw_times`` are seconds, one per call, in call order; do not change them after the
    statistics are read (they are cached). ``batch_size`` turns ``throughput`` into items/s
    (calls/s without it); ``flops`` (per call, see ``graph_flops``) gives ``gflops``.
    """

    label: str
    raw_times: list[float]
    batch_size: int | None = None
    flops: int | None = None
    threads: int | None = None
    warmup: int = 0

    def __post_init__(self) -> None:
        times = [float(t) for t in self.raw_times]
        if not times or not all(math.isfinite(t) and t >= 0 for t in times):
            raise InvalidInputError(
                f"A Measurement needs at least one finite time >= 0 in seconds, received {describe(self.raw_times)}. "
                "Build it with wb.benchmark(target, inputs)."
            )
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise InvalidInputError(f"batch_size must be an int >= 1 or None, received {self.batch_size!r}.")
        self.raw_times = times

    @cached_property
    def _quantiles(self) -> dict[int, float]:
        qs = (25, 50, 75, 90, 95, 99)
        return dict(zip(qs, (float(v) for v in np.percentile(np.asarray(self.raw_times), qs))))

    @property
    def runs(self) -> int:
        return len(self.raw_times)

    @property
    def median(self) -> float:
        return self._quantiles[50]

    p50 = median

    @property
    def p90(self) -> float:
        return self._quantiles[90]

    @property
    def p95(self) -> float:
        return self._quantiles[95]

    @property
    def p99(self) -> float:
        return self._quantiles[99]

    @cached_property
    def mean(self) -> float:
        return float(np.mean(self.raw_times))

    @cached_property
    def std(self) -> float:
        """Sample standard deviation (0 for a single run)."""
        return float(np.std(self.raw_times, ddof=1)) if self.runs > 1 else 0.0

    @property
    def min(self) -> float:
        return min(self.raw_times)

    @property
    def max(self) -> float:
        return max(self.raw_times)

    @property
    def iqr(self) -> float:
        return self._quantiles[75] - self._quantiles[25]

    @property
    def relative_iqr(self) -> float:
        """IQR / median, the spread the noise verdict is based on."""
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def noisy(self) -> bool:
        return self.relative_iqr > NOISE_THRESHOLD

    @property
    def noise(self) -> str:
        """A one-line verdict on the spread, worded like torch.utils.benchmark's warning."""
        pct = f"{self.relative_iqr * 100:.1f}%"
        if self.noisy:
            return (
                f"WARNING: Interquartile range is {pct} of the median measurement. This suggests "
                "significant environmental influence (other processes, frequency scaling, thread "
                "oversubscription); close other work, pin threads, or take more runs."
            )
        text = f"Interquartile range is {pct} of the median measurement (steady)."
        return text + (f" Only {self.runs} runs: take more to trust it." if self.runs < 5 else "")

    @property
    def throughput(self) -> float:
        """Items per second at the median (``batch_size / median``), or calls per second."""
        return (self.batch_size or 1) / self.median if self.median > 0 else math.inf

    @property
    def throughput_unit(self) -> str:
        return "items/s" if self.batch_size else "calls/s"

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s at the median (``flops / median / 1e9``), if ``flops`` is known."""
        if self.flops is None or self.median <= 0:
            return None
        return self.flops / self.median / 1e9

    def summary(self) -> dict[str, Any]:
        """The statistics as one flat dict (one row of a summary table)."""
        return {
            "label": self.label, "runs": self.runs, "batch_size": self.batch_size, "threads": self.threads,
            "min": self.min, "p50": self.p50, "p90": self.p90, "p95": self.p95, "p99": self.p99,
            "max": self.max, "mean": self.mean, "std": self.std, "iqr": self.iqr,
            "throughput": self.throughput, "gflops": self.gflops, "noisy": self.noisy,
        }

    def to_pandas(self) -> Any:
        """One row per timed call (``label, run, time_s, batch_size, threads``), to plot or filter
        the raw times; ``pandas.DataFrame([m.summary()])`` gives the one-row summary."""
        import pandas as pd

        return pd.DataFrame({
            "label": self.label, "run": range(self.runs), "time_s": self.raw_times,
            "batch_size": self.batch_size, "threads": self.threads,
        })

    def _headline(self) -> str:
        text = (
            f"median {fmt_time(self.median)} (p90 {fmt_time(self.p90)}, IQR {fmt_time(self.iqr)}), "
            f"{self.throughput:.4g} {self.throughput_unit}"
        )
        return text + (f", {self.gflops:.3g} GFLOP/s" if self.gflops is not None else "")

    def __repr__(self) -> str:
        text = f"<Measurement {self.label!r}: {self.runs} runs, {self._headline()}>"
        return text + ("\n  " + self.noise if self.noisy else "")

    def _repr_html_(self) -> str:
        import html

        verdict = badge(False, "NOISY") if self.noisy else badge(True, "STEADY")
        table = html_table(
            ["runs", "min", "p50", "p90", "p95", "p99", "mean", "std", "throughput"],
            [[self.runs, *(fmt_time(v) for v in (self.min, self.p50, self.p90, self.p95, self.p99,
                                                 self.mean, self.std)),
              f"{self.throughput:.4g} {self.throughput_unit}"]],
        )
        return f"<div><b>{html.escape(self.label)}</b> {verdict}{table}<small>{html.escape(self.noise)}</small></div>"


# ---------------------------------------------------------------------------------------------
# benchmark()
# ---------------------------------------------------------------------------------------------


def check_budget(
    warmup: Any, runs: Any, min_time: Any, *, default_runs: int = DEFAULT_RUNS
) -> tuple[int | None, float | None]:
    """Validated ``(runs, min_time)``: exactly one is set (``runs=default_runs`` if neither was)."""
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise InvalidInputError(f"warmup must be an int >= 0, received {warmup!r}. Try warmup=10.")
    if runs is not None and min_time is not None:
        raise InvalidInputError(
            f"Pass either runs (a count) or min_time (seconds), not both; received runs={runs!r}, "
            f"min_time={min_time!r}."
        )
    if runs is None and min_time is None:
        return default_runs, None
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
        raise InvalidInputError(f"runs must be an int >= 1, received {runs!r}. Try runs={DEFAULT_RUNS}.")
    if min_time is not None and (
        not isinstance(min_time, (int, float)) or isinstance(min_time, bool) or not 0 < min_time < math.inf
    ):
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
    """Set ``torch.set_num_threads`` for the block (if given) and restore it afterwards."""
    previous = torch.get_num_threads()
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise InvalidInputError(f"threads must be an int >= 1 or None, received {threads!r}.")
    torch.set_num_threads(threads or previous)
    try:
        yield threads or previous
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


def _module_call(model: nn.Module, inputs: Any) -> Callable[[], Any]:
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


def benchmark(
    target: nn.Module | ort.InferenceSession,
    inputs: Any,
    *,
    warmup: int = 10,
    runs: int | None = None,
    min_time: float | None = None,
    threads: int | None = None,
    label: str | None = None,
    batch_size: int | None = None,
    flops: int | None = None,
) -> Measurement:
    """Time ``target`` on ``inputs``: ``warmup`` untimed calls, then ``runs`` timed calls
    (default 50) or as many as fill ``min_time`` seconds.

    ``target`` is an ``nn.Module`` (run under ``torch.inference_mode`` with
    ``torch.set_num_threads(threads)``, restored afterwards; default: torch's current count)
    or an ``onnxruntime.InferenceSession`` (inputs converted once to a numpy feed by
    ``session.get_inputs()`` names; ``threads`` may only repeat the session's own count).
    """
    if not isinstance(target, (nn.Module, ort.InferenceSession)):
        raise InvalidInputError(
            f"target must be a torch.nn.Module or an onnxruntime.InferenceSession, received {describe(target)}. "
            "For an ONNX file, open it first: wb.open_session(path, wb.SessionConfig())."
        )
    runs, min_time = check_budget(warmup, runs, min_time)
    _check_not_empty(inputs)
    if isinstance(target, ort.InferenceSession):
        used = _session_threads(target, threads)
        call = functools.partial(target.run, None, build_feed(target, inputs))
        name = label or "ort:" + "+".join(p.replace("ExecutionProvider", "") for p in target.get_providers())
        times = _run_guarded(call, warmup, runs, min_time, name)
    else:
        call = _module_call(target, inputs)
        name = label or f"eager:{type(target).__name__}"
        with torch_threads(threads) as used, torch.inference_mode():
            times = _run_guarded(call, warmup, runs, min_time, name)
    return Measurement(name, times, batch_size=batch_size, flops=flops, threads=used, warmup=warmup)


def _run_guarded(call: Callable[[], Any], warmup: int, runs: int | None, min_time: float | None,
                 name: str) -> list[float]:
    try:
        return _time_calls(call, warmup, runs, min_time)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"{name} failed while being timed: {type(exc).__name__}: {str(exc).strip()[:800]}. "
            "Run it once by hand on the same inputs to check they fit the model."
        ) from exc
