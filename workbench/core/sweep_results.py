"""``SweepRow`` and ``SweepResult``: the cells of a ``sweep()``, with speed-ups over eager PyTorch
(each with its bootstrap interval and a verdict) and the fraction of a measured machine peak each
cell reached (against the peak of the model's data type: float32, or int8 for a quantized graph)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from workbench.core._format import badge, html_table, text_table
from workbench.core._io import PathLike
from workbench.core.flops import Peak
from workbench.core.measurement import Measurement
from workbench.core.paired import Ratio
from workbench.errors import InvalidInputError, brief

__all__ = ["EAGER", "CellKey", "SweepResult", "SweepRow", "fill_speedups"]

EAGER = "eager"
CellKey = tuple[str, int, Union[int, None]]


@dataclass
class SweepRow:
    """One cell of a sweep: a config (or ``eager``) at one batch size and sequence length.

    Times are seconds; ``throughput`` is items/s (batch / p50); ``speedup`` is eager's time
    over this row's at the same shape, measured interleaved in the same cell (``None`` without
    an eager row), with its 95% bootstrap interval ``[speedup_low, speedup_high]`` and
    ``verdict``: ``"faster"``, ``"slower"`` or ``"no clear difference"`` (the interval holds 1);
    ``rounds`` and ``stopped`` say how the cell's measurement ended (see ``paired.py``).
    ``gflops`` is achieved GFLOP/s (GOP/s for an int8 graph) from the graph's FLOPs (``None``
    when they are unknown). A failed cell has ``error`` set and NaN times.
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
    speedup_low: float | None = None
    speedup_high: float | None = None
    verdict: str | None = None
    rounds: int | None = None
    stopped: str | None = None
    flops: int | None = None
    gflops: float | None = None
    noisy: bool | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def clear(self) -> bool:
        """True when the speed-up's interval excludes 1 (a real difference at 95%)."""
        return self.verdict in ("faster", "slower")

    @classmethod
    def from_measurement(cls, config: str, batch: int, seq: int | None, m: Measurement,
                         ratio: Ratio | None = None, *, rounds: int | None = None,
                         stopped: str | None = None) -> SweepRow:
        row = cls(config, batch, seq, p50=m.p50, p90=m.p90, p95=m.p95, p99=m.p99, mean=m.mean,
                  throughput=m.throughput, flops=m.flops, gflops=m.gflops, noisy=m.noisy, rounds=rounds,
                  stopped=stopped)
        if ratio is not None and math.isfinite(ratio.value):
            row.speedup, row.speedup_low, row.speedup_high = ratio.value, ratio.low, ratio.high
            row.verdict = ratio.verdict
        return row


_COLUMNS = ["config", "batch", "seq", "p50 (ms)", "p90 (ms)", "p99 (ms)", "items/s", "speedup", "95% CI", "GFLOP/s",
            "note"]
#: What a cell whose speed-up interval holds 1.0 is called, in tables and figures.
UNCLEAR = "no clear difference"


def _ms(seconds: float) -> str:
    """Milliseconds with three significant digits: one unit for every time in the table."""
    return f"{seconds * 1e3:.3g}"


def _count(value: float) -> str:
    """A rate without exponent notation: 13,310 rather than 1.331e+04."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ci_text(row: SweepRow) -> str:
    """``[low, high]`` of a row's speed-up, or ``-`` without one."""
    return _interval(row.speedup_low, row.speedup_high)


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None or low != low or high != high:  # None or NaN (from pandas)
        return "-"
    return f"[{low:.2f}, {'inf' if not math.isfinite(high) else f'{high:.2f}'}]"


def note_text(row: SweepRow) -> str:
    """The row's notes: the verdict when unclear, and noise."""
    notes = [UNCLEAR] if row.verdict == UNCLEAR else []
    return ", ".join(notes + (["noisy"] if row.noisy else []))


def _cells(row: SweepRow) -> list[Any]:
    if not row.ok:
        return [row.config, row.batch, row.seq if row.seq is not None else "-", "", "", "", "", "", "", "",
                "ERROR " + brief(row.error or "", 100)]
    return [
        row.config, row.batch, row.seq if row.seq is not None else "-",
        _ms(row.p50), _ms(row.p90), _ms(row.p99), _count(row.throughput),
        f"{row.speedup:.2f}x" if row.speedup is not None else "-", ci_text(row),
        f"{row.gflops:.3g}" if row.gflops is not None else "-", note_text(row),
    ]


@dataclass(eq=False)
class SweepResult:
    """Rows of a sweep (cell by cell: at each shape eager first, then each config, all measured
    interleaved), the ``Measurement`` of each successful cell, the speed-up ``Ratio`` of each ORT
    cell, the graph's ``precision`` (``"float32"``, ``"int8"``...) and whether it was cancelled."""

    rows: list[SweepRow] = field(default_factory=list)
    measurements: dict[CellKey, Measurement] = field(default_factory=dict, repr=False)
    exceptions: dict[CellKey, BaseException] = field(default_factory=dict, repr=False)
    total: int = 0
    cancelled: bool = False
    ratios: dict[CellKey, Ratio] = field(default_factory=dict, repr=False)
    precision: str = "float32"

    @property
    def errors(self) -> list[SweepRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def unclear(self) -> list[SweepRow]:
        """The ORT rows whose speed-up interval holds 1.0 ("no clear difference")."""
        return [r for r in self.rows if r.verdict == UNCLEAR]

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
        """One row per cell; the columns are ``SweepRow``'s fields (``speedup_low``/``speedup_high``:
        the 95% interval, ``verdict``: faster / slower / no clear difference)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in fields(SweepRow)])

    def to_csv(self, out: PathLike) -> Path:
        """Write ``to_pandas()`` as CSV to ``out``; returns its path."""
        target = Path(out)
        self.to_pandas().to_csv(target, index=False)
        return target

    def speedups(self, *, with_ci: bool = False) -> Any:
        """ONNX Runtime's speed-up over eager PyTorch as a batch x seq table (the best config per cell;
        a sweep without a sequence axis has one column, ``-``). ``with_ci=True`` gives text cells,
        ``1.42x [1.35, 1.50]``, with ``(no clear difference)`` where the interval holds 1."""
        frame = self.to_pandas()
        frame = frame[(frame.config != EAGER) & frame.speedup.notna()].copy()
        frame["seq"] = frame["seq"].astype(object).where(frame["seq"].notna(), "-")
        if not with_ci:
            return frame.pivot_table(index="batch", columns="seq", values="speedup", aggfunc="max").round(2)
        best = frame.loc[frame.groupby(["batch", "seq"], sort=False).speedup.idxmax()].copy()
        best["text"] = [f"{v:.2f}x {_interval(lo, hi)}" + (f" ({UNCLEAR})" if verdict == UNCLEAR else "")
                        for v, lo, hi, verdict in zip(best.speedup, best.speedup_low, best.speedup_high, best.verdict)]
        return best.pivot(index="batch", columns="seq", values="text").sort_index()

    def of_peak(self, peak: Peak, *, precision: str | None = None) -> Any:
        """Each cell's achieved rate against ``peak`` (``machine_peak()``) of the graph's data type:
        an int8 graph's GOP/s against the int8 GEMM peak, a float graph's GFLOP/s against the float32
        peak. Columns config, batch, seq, precision, gflops, p50 ms, of peak, note; a cell above the
        measured peak gets no fraction but a note saying so (the peak was measured low)."""
        if not isinstance(peak, Peak) or not peak.gflops > 0:
            raise InvalidInputError(f"peak must be a wb.Peak from wb.machine_peak(), received {peak!r}.")
        kind = precision or self.precision
        reference = peak.best_for(kind)
        frame = self.to_pandas()[["config", "batch", "seq", "p50", "gflops"]].copy()
        frame.insert(3, "precision", kind)
        frame["p50 ms"] = (frame.pop("p50") * 1e3).round(3)
        rate = frame.gflops.astype(float)
        fraction = rate / reference if reference else rate * math.nan
        above = fraction > 1.0
        frame["of peak"] = fraction.where(~above).round(3)
        frame["gflops"] = rate.round(2)
        note = "" if reference else f"no {kind} peak measured"
        frame["note"] = [f"above the measured {kind} peak ({f:.2f}x): the peak was measured low; rerun "
                         "wb.machine_peak(refresh=True) on a quiet machine" if a else note
                         for f, a in zip(fraction, above)]
        return frame

    def _status(self) -> str:
        text = f"{len(self.rows)}/{self.total} cells"
        if self.cancelled:
            text += ", cancelled"
        if self.unclear:
            text += f", {len(self.unclear)} with {UNCLEAR}"
        return text + (f", {len(self.errors)} failed" if self.errors else "")

    def __repr__(self) -> str:
        return f"SweepResult({self._status()})\n" + text_table(_COLUMNS, [_cells(r) for r in self.rows])

    def _repr_html_(self) -> str:
        flag = badge(None, "CANCELLED") if self.cancelled else badge(not self.errors, "FAILURES" if self.errors else "DONE")
        return f"<div>{flag} {self._status()}{html_table(_COLUMNS, [_cells(r) for r in self.rows])}</div>"


def fill_speedups(rows: list[SweepRow]) -> None:
    """Set each row's ``speedup`` that has none yet (a row built by hand, without an interleaved
    measurement): eager's p50 at the same shape over the row's p50, with no interval."""
    eager = {(r.batch, r.seq): r.p50 for r in rows if r.config == EAGER and r.ok}
    for row in rows:
        base = eager.get((row.batch, row.seq))
        if row.ok and row.speedup is None and base is not None and row.p50 > 0:
            row.speedup = base / row.p50
