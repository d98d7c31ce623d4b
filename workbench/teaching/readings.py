"""Sentences that say what this run measured, for the notebooks' speed comparisons.

A notebook that states a law ("the speed-up shrinks as the batch grows", "INT8 is faster") next to a
table from a run that shows otherwise teaches the wrong thing. These helpers read the numbers of
the run (a ``SweepResult`` or ``Measurement`` objects) and say what they show, noise included;
the notebook's text explains the mechanisms that can make the numbers go either way.
``workbench.teaching.tutorial`` re-exports them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from workbench.core.sweep_results import EAGER, UNCLEAR

#: Ratios within this fraction of each other are called "about the same" (timing noise on a busy machine).
SAME_WITHIN = 0.10


def _trend(first: float, last: float) -> str:
    if last < first * (1 - SAME_WITHIN):
        return "shrank"
    if last > first * (1 + SAME_WITHIN):
        return "grew"
    return "stayed about the same"


def _seq_text(seq: Any) -> str:
    return "" if seq in ("-", None) or (isinstance(seq, float) and math.isnan(seq)) else f"seq {seq}"


def describe_speedups(result: Any) -> str:
    """What a sweep's speed-up table (``result.speedups()``: eager p50 / best ONNX Runtime p50, per
    batch and seq) shows in this run: how the speed-up moved from the smallest to the largest batch
    at each sequence length, where eager PyTorch was the faster one, and how many cells were noisy."""
    table = result.speedups()
    if table.empty:
        return "This run measured no speed-ups (no eager rows, or every cell failed)."
    batches = list(table.index)
    first, last = batches[0], batches[-1]
    parts, trends = [], []
    for seq in table.columns:
        column = table[seq].dropna()
        if column.empty:
            continue
        lo, hi = float(column.loc[column.index.min()]), float(column.loc[column.index.max()])
        where = _seq_text(seq)
        trend = _trend(lo, hi)
        trends.append(trend)
        steady = column.is_monotonic_increasing or column.is_monotonic_decreasing
        span = f"{lo:.2f}x at batch {column.index.min()} to {hi:.2f}x at batch {column.index.max()}"
        unsteady = ", not steadily" if not steady and trend != "stayed about the same" else ""
        parts.append(f"{span}{f' ({where})' if where else ''}: it {trend}{unsteady}")
    if len(batches) == 1:
        head = f"In this run only batch {first} was measured, so the trend over the batch cannot be read here."
    else:
        head = "In this run ONNX Runtime's speed-up over eager PyTorch went from " + "; from ".join(parts) + "."
        if len(set(trends)) == 1:
            head += f" So here the speed-up {trends[0]} as the batch grew from {first} to {last}."
        else:
            head += " So here the trend depends on the sequence length."
    unclear = _unclear_cells(result)
    slower = [(b, s, float(v)) for b in batches for s, v in table.loc[b].items()
              if v == v and v < 1.0 and (b, s) not in unclear]
    if slower:
        head += f" Eager PyTorch was faster at: {_cells_text(slower)}."
    shown = [(b, s, float(v)) for b in batches for s, v in table.loc[b].items() if v == v and (b, s) in unclear]
    if shown:
        head += (f" At {_cells_text(shown)} this run shows no clear difference (the 95% interval of the best "
                 "config's speed-up holds 1): do not read a winner there.")
    return head + _noise_note(result)


def _cells_text(cells: list[tuple[Any, Any, float]]) -> str:
    return ", ".join(f"batch {b}{f' x {_seq_text(s)}' if _seq_text(s) else ''} ({v:.2f}x)" for b, s, v in cells)


def _unclear_cells(result: Any) -> set[tuple[Any, Any]]:
    """Cells whose fastest ONNX Runtime config has a speed-up interval that holds 1 (no clear difference)."""
    best: dict[tuple[Any, Any], Any] = {}
    for row in result.rows:
        if row.ok and row.speedup is not None and row.config != EAGER:
            key = (row.batch, "-" if row.seq is None else row.seq)  # the table's column for no sequence axis
            if key not in best or row.speedup > best[key].speedup:
                best[key] = row
    return {key for key, row in best.items() if getattr(row, "verdict", None) == UNCLEAR}


def _noise_note(result: Any) -> str:
    rows = [r for r in result.rows if r.ok]
    noisy = [r for r in rows if r.noisy]
    if not noisy:
        return ""
    return (f" {len(noisy)} of {len(rows)} cells were flagged noisy: differences of about "
            f"{SAME_WITHIN:.0%} can flip from run to run.")


def _median_ms(m: Any) -> float:
    return float(m.p50) * 1e3


def describe_latencies(base: Any, others: Mapping[str, Any], *, base_name: str | None = None) -> str:
    """One sentence comparing the median latency of each ``Measurement`` in ``others`` with ``base``'s,
    as this run measured them (a ratio within ``SAME_WITHIN`` of 1 is called about the same)."""
    name = base_name or getattr(base, "label", "") or "the baseline"
    parts = []
    for label, m in others.items():
        ratio = _median_ms(m) / _median_ms(base)
        verdict = ("about as fast as" if abs(ratio - 1) <= SAME_WITHIN
                   else "faster than" if ratio < 1 else "slower than")
        parts.append(f"{label} took {_median_ms(m):.3g} ms, {ratio:.2f}x of {name}'s {_median_ms(base):.3g} ms "
                     f"({verdict} {name})")
    noisy = [label for label, m in {name: base, **others}.items() if getattr(m, "noisy", False)]
    note = f" Flagged noisy: {', '.join(noisy)}; rerun before trusting a small difference." if noisy else ""
    return "In this run (median latency): " + "; ".join(parts) + "." + note


def describe_configs(result: Any, batch: int, seq: int | None = None) -> str:
    """Which ONNX Runtime config of a sweep was fastest and slowest at one (``batch``, ``seq``) cell in
    this run, how far apart they were, and whether that is more than the noise."""
    rows = [r for r in result.rows if r.ok and r.config != "eager" and r.batch == batch and r.seq == seq]
    if len(rows) < 2:
        return "This run has fewer than two configs measured at that size; nothing to rank."
    rows.sort(key=lambda r: r.p50)
    fast, slow = rows[0], rows[-1]
    spread = slow.p50 / fast.p50
    text = (f"In this run the fastest config was {fast.config} ({fast.p50 * 1e3:.3g} ms median) and the slowest "
            f"{slow.config} ({slow.p50 * 1e3:.3g} ms), {spread:.2f}x apart.")
    if spread - 1 <= SAME_WITHIN:
        text += " That is within the noise of a short run: here the levels made no measurable difference."
    noisy = [r.config for r in rows if r.noisy]
    if noisy:
        text += f" Flagged noisy: {', '.join(noisy)}."
    return text
