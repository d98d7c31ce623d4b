"""``Measurement``: the raw per-call times of one timed target and the statistics computed from
them lazily (percentiles, spread, a noise verdict), as in ``torch.utils.benchmark.Measurement``.
``benchmark()`` (``bench.py``) makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from workbench.core._format import badge, esc, fmt_time, html_table
from workbench.errors import InvalidInputError, describe

__all__ = ["NOISE_THRESHOLD", "Measurement"]

#: A run is called noisy when its interquartile range is more than this fraction of its median.
NOISE_THRESHOLD = 0.1


@dataclass(eq=False)
class Measurement:
    """Raw per-call times of one target and the statistics computed from them (lazily).

    ``raw_times`` are seconds, one per call, in call order; do not change them after the
    statistics are read (they are cached). ``batch_size`` turns ``throughput`` into items/s
    (calls/s without it); ``flops`` (per call, see ``graph_flops``) gives ``gflops``.
    ``cpu_per_call`` is the CPU time of the whole process per call, warmup included (threads
    that spin between calls show up there, not in the latency).
    """

    label: str
    raw_times: list[float]
    batch_size: int | None = None
    flops: int | None = None
    threads: int | None = None
    warmup: int = 0
    cpu_per_call: float | None = None

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
            "cpu_per_call": self.cpu_per_call,
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
        verdict = badge(False, "NOISY") if self.noisy else badge(True, "STEADY")
        table = html_table(
            ["runs", "min", "p50", "p90", "p95", "p99", "mean", "std", "throughput"],
            [[self.runs, *(fmt_time(v) for v in (self.min, self.p50, self.p90, self.p95, self.p99,
                                                 self.mean, self.std)),
              f"{self.throughput:.4g} {self.throughput_unit}"]],
        )
        return f"<div><b>{esc(self.label)}</b> {verdict}{table}<small>{esc(self.noise)}</small></div>"
