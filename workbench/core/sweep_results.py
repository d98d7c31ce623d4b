"""``SweepRow`` and ``SweepResult``: the cells of a ``sweep()``, with speed-ups over eager PyTorch
and the fraction of a measured machine peak each cell reached."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from workbench.core._format import badge, html_table, text_table
from workbench.core._io import PathLike
from workbench.core.flops import Peak
from workbench.core.measurement import Measurement
from workbench.errors import InvalidInputError, brief

__all__ = ["EAGER", "CellKey", "SweepResult", "SweepRow", "fill_speedups"]

EAGER = "eager"
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


_COLUMNS = ["config", "batch", "seq", "p50 (ms)", "p90 (ms)", "p99 (ms)", "items/s", "speedup", "GFLOP/s", "note"]


def _ms(seconds: float) -> str:
    """Milliseconds with three significant digits: one unit for every time in the table."""
    return f"{seconds * 1e3:.3g}"


def _count(value: float) -> str:
    """A rate without exponent notation: 13,310 rather than 1.331e+04."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _cells(row: SweepRow) -> list[Any]:
    if not row.ok:
        return [row.config, row.batch, row.seq if row.seq is not None else "-", "", "", "", "", "", "",
                "ERROR " + brief(row.error or "", 100)]
    return [
        row.config, row.batch, row.seq if row.seq is not None else "-",
        _ms(row.p50), _ms(row.p90), _ms(row.p99), _count(row.throughput),
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

    def to_csv(self, out: PathLike) -> Path:
        """Write ``to_pandas()`` as CSV to ``out``; returns its path."""
        target = Path(out)
        self.to_pandas().to_csv(target, index=False)
        return target

    def speedups(self) -> Any:
        """ONNX Runtime's speed-up over eager PyTorch as a batch x seq table (the best config per cell;
        a sweep without a sequence axis has one column, ``-``)."""
        frame = self.to_pandas()
        frame = frame[(frame.config != EAGER) & frame.speedup.notna()].copy()
        frame["seq"] = frame["seq"].astype(object).where(frame["seq"].notna(), "-")
        return frame.pivot_table(index="batch", columns="seq", values="speedup", aggfunc="max").round(2)

    def of_peak(self, peak: Peak) -> Any:
        """Each cell's achieved GFLOP/s and its fraction of ``peak`` (``machine_peak()``): columns
        config, batch, seq, gflops, p50 ms, of peak."""
        if not isinstance(peak, Peak) or not peak.gflops > 0:
            raise InvalidInputError(f"peak must be a wb.Peak from wb.machine_peak(), received {peak!r}.")
        frame = self.to_pandas()[["config", "batch", "seq", "p50", "gflops"]].copy()
        frame["p50 ms"] = (frame.pop("p50") * 1e3).round(3)
        frame["of peak"] = (frame.gflops.astype(float) / peak.gflops).round(3)
        frame["gflops"] = frame.gflops.astype(float).round(2)
        return frame

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


def fill_speedups(rows: list[SweepRow]) -> None:
    """Set each ORT row's ``speedup``: eager's p50 at the same shape over the row's p50."""
    eager = {(r.batch, r.seq): r.p50 for r in rows if r.config == EAGER and r.ok}
    for row in rows:
        base = eager.get((row.batch, row.seq))
        if row.ok and base is not None and row.p50 > 0:
            row.speedup = base / row.p50
