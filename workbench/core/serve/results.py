"""``LoadResult`` and ``LoadLevel``: what ``load_test`` measured, one level per concurrency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.core._format import esc, html_table, text_table

__all__ = ["LoadLevel", "LoadResult"]

_COLUMNS = ("concurrency", "requests", "ok", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms",
            "mean_batch", "wrong", "client_cpu_s")


@dataclass
class LoadLevel:
    """One concurrency level: counts, throughput (answered 200 per second), latency percentiles (ms, over every
    answered request), errors by HTTP status (0: no answer at all: a timeout or a refused connection), the
    mean batch size the server reported (per batch), and responses that differed from an offline run of their
    own request (``wrong``; None when not verified)."""

    concurrency: int
    requests: int
    ok: int
    errors: dict[int, int]
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch: float | None
    wrong: int | None
    client_cpu_s: float = 0.0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return self.ok > 0 and not self.errors and not self.wrong

    def row(self) -> list[Any]:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "-"
        return [self.concurrency, self.requests, self.ok, errors, round(self.throughput_rps, 1),
                round(self.p50_ms, 2), round(self.p95_ms, 2), round(self.p99_ms, 2),
                None if self.mean_batch is None else round(self.mean_batch, 2),
                "-" if self.wrong is None else self.wrong, round(self.client_cpu_s, 2)]


@dataclass
class LoadResult:
    """Every level of a load test, the URL, the seconds per level, the load generator's own CPU seconds (its
    thread's, so a server in the same process is not counted) and whether it was cancelled."""

    levels: list[LoadLevel]
    url: str
    duration_s: float
    client_cpu_s: float
    cancelled: bool = False
    verified: bool = False

    def __bool__(self) -> bool:
        return bool(self.levels) and all(bool(level) for level in self.levels) and not self.cancelled

    def level(self, concurrency: int) -> LoadLevel:
        """The level run at ``concurrency``."""
        for level in self.levels:
            if level.concurrency == concurrency:
                return level
        raise KeyError(f"No level at concurrency {concurrency}; levels: {[lv.concurrency for lv in self.levels]}")

    def to_pandas(self) -> Any:
        import pandas as pd

        frame = pd.DataFrame([lv.row() for lv in self.levels], columns=list(_COLUMNS))
        frame["errors"] = [dict(lv.errors) for lv in self.levels]
        return frame

    def text_table(self) -> str:
        return text_table(_COLUMNS, [lv.row() for lv in self.levels])

    def _summary(self) -> str:
        verdict = "ok" if self else ("cancelled" if self.cancelled else "errors or wrong answers")
        return (f"{len(self.levels)} levels, {self.duration_s:g} s each, client CPU {self.client_cpu_s:.2f} s, "
                f"{'verified' if self.verified else 'not verified'}: {verdict}")

    def __repr__(self) -> str:
        best = max(self.levels, key=lambda lv: lv.throughput_rps, default=None)
        top = f", best {best.throughput_rps:.0f} rps at concurrency {best.concurrency}" if best else ""
        return f"LoadResult({self.url}, {self._summary()}{top})"

    def __str__(self) -> str:
        return f"Load test of {self.url}: {self._summary()}\n{self.text_table()}"

    def _repr_html_(self) -> str:
        table = html_table(_COLUMNS, [lv.row() for lv in self.levels])
        return (f"<div class='wb-load'><b>Load test</b> of <code>{esc(self.url)}</code>: {esc(self._summary())}"
                f"{table}</div>")
