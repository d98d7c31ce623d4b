"""Results of the pipeline's composite stages: ``OptLevels`` (optimize at every level, with the
latency of each) and ``Converted`` (an INT8/FP16 conversion with its gate, and its latency)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.core._format import esc, fmt_bytes, fmt_num, fmt_time, html_table, text_table
from workbench.core.bench import Measurement
from workbench.core.optimize import OptimizeResult
from workbench.core.quantize import QuantizeResult
from workbench.core.session import OPT_LEVELS


@dataclass
class OptLevels:
    """``optimize`` at each ONNX Runtime level and the latency of a session at that level."""

    results: dict[str, OptimizeResult] = field(default_factory=dict)
    latency: dict[str, Measurement] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.errors and not self.cancelled

    def __bool__(self) -> bool:
        return self.ok

    @property
    def best(self) -> str | None:
        """The level with the lowest median latency."""
        return min(self.latency, key=lambda lv: self.latency[lv].p50) if self.latency else None

    def _rows(self) -> list[list[Any]]:
        rows = []
        for level in OPT_LEVELS:
            r, m = self.results.get(level), self.latency.get(level)
            if r is None and m is None and level not in self.errors:
                continue
            rows.append([level, r.nodes_before if r else "", r.nodes_after if r else "",
                         fmt_time(m.p50) if m else "", fmt_time(m.p95) if m else "", self.errors.get(level, "")[:160]])
        return rows

    _HEADERS = ["level", "nodes before", "nodes after", "p50", "p95", "error"]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"level": lv, "nodes_before": r.nodes_before if (r := self.results.get(lv)) else None,
                              "nodes_after": r.nodes_after if r else None,
                              "p50": m.p50 if (m := self.latency.get(lv)) else None, "p95": m.p95 if m else None,
                              "error": self.errors.get(lv)}
                             for lv in OPT_LEVELS if lv in self.results or lv in self.latency or lv in self.errors])

    def __repr__(self) -> str:
        return f"OptLevels(best={self.best!r})\n" + text_table(self._HEADERS, self._rows())

    def _repr_html_(self) -> str:
        return html_table(self._HEADERS, self._rows(), caption="ONNX Runtime optimization levels")


@dataclass
class Converted:
    """An INT8 or FP16 conversion (with its accuracy gate) and its latency next to FP32's."""

    kind: str
    result: QuantizeResult
    latency: Measurement | None = None
    baseline: Measurement | None = None
    latency_error: str | None = None

    @property
    def speedup(self) -> float | None:
        """FP32 median / converted median (above 1: the conversion is faster)."""
        if self.latency is None or self.baseline is None or self.latency.p50 <= 0:
            return None
        return self.baseline.p50 / self.latency.p50

    @property
    def ok(self) -> bool:
        return self.result.ok and self.latency_error is None

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        q = self.result
        gate = (f"gate {'PASS' if q.ok else 'FAIL'} at {q.tolerance} (max abs {fmt_num(q.gate.max_abs)})"
                if q.gate is not None else f"gate not run: {q.gate_error}")
        size = f"{fmt_bytes(q.bytes_before)} -> {fmt_bytes(q.bytes_after)}"
        if self.latency is not None:
            speed = f"p50 {fmt_time(self.latency.p50)}"
            speed += f" ({self.speedup:.2f}x vs fp32)" if self.speedup is not None else ""
        else:
            speed = f"latency not measured: {self.latency_error}"
        return f"{gate}; {size}; {speed}"

    def __repr__(self) -> str:
        return f"Converted({self.kind}: {self.summary()})"

    def _repr_html_(self) -> str:
        return f"<div><p>{esc(self.summary())}</p>{self.result._repr_html_()}</div>"
