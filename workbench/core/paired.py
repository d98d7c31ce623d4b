"""Paired timing: several callables measured interleaved in short blocks, and speed-up ratios
with bootstrap confidence intervals.

Why interleaved: on a small machine, whatever runs first gets a different machine (turbo,
caches, other processes) from whatever runs a minute later, so timing one target's whole run
and then the other's measures the machine's drift as much as the targets. ``measure_interleaved``
cycles through the targets in blocks of a few calls each (in a new random order every round, so
no target always follows the same neighbour: a rotation would keep the cyclic order), drops
each block's first call (ONNX Runtime's intra-op threads keep spinning after a run and slow
whatever runs right after it; the first call of a block also pays for cold caches), and pairs
the targets by round: each round gives every target one median, taken close together in time.
``bootstrap_ratio`` resamples those rounds to put a confidence interval on the ratio of medians.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from workbench.core._checks import is_int, is_number
from workbench.core._format import badge, fmt_time, html_table
from workbench.core.cancel import Cancel, check_cancel, is_cancelled
from workbench.errors import InvalidInputError, WorkbenchError, describe

__all__ = ["MIN_CI_ROUNDS", "Interleaved", "Ratio", "bootstrap_ratio", "measure_interleaved"]

STOP_REASONS = ("tight", "budget", "max_rounds", "cancelled")
#: Fewer paired rounds than this give no interval (``[0, inf]``): with n rounds the percentile
#: bootstrap's interval is about the range of the per-round ratios, which excludes 1 by chance
#: with probability 2 / 2**n when there is no difference (25% for 3 rounds, 3% for 6).
MIN_CI_ROUNDS = 6


@dataclass(frozen=True)
class Ratio:
    """A speed-up ``value`` (reference time / this time: > 1 means faster than the reference) with
    its bootstrap interval ``[low, high]`` at ``confidence``, from ``n`` paired rounds."""

    value: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def clear(self) -> bool:
        """True when the interval excludes 1.0: the difference is real at this confidence."""
        return self.low > 1.0 or self.high < 1.0

    @property
    def verdict(self) -> str:
        """``"faster"``, ``"slower"`` or ``"no clear difference"``."""
        if not self.clear:
            return "no clear difference"
        return "faster" if self.low > 1.0 else "slower"

    @property
    def rel_half_width(self) -> float:
        """Half the interval's width relative to the value (``inf`` when unknown)."""
        if not (self.value > 0 and math.isfinite(self.high) and math.isfinite(self.low)):
            return math.inf
        return (self.high - self.low) / 2 / self.value

    def __str__(self) -> str:
        if not math.isfinite(self.high):
            return f"{self.value:.2f}x [no interval: {self.n} rounds]"
        return f"{self.value:.2f}x [{self.low:.2f}, {self.high:.2f}]"

    def __repr__(self) -> str:
        return f"Ratio({self}, n={self.n}, {self.verdict})"


def _as_rounds(values: Any, what: str) -> np.ndarray:
    """Per-round values: a 1-D array as it is, a 2-D (rounds x calls) array reduced to row medians."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim not in (1, 2) or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InvalidInputError(
            f"{what} must be a non-empty 1-D array of per-round times (or a 2-D rounds x calls array) of finite "
            f"seconds > 0, received {describe(values)}."
        )
    return np.median(arr, axis=1) if arr.ndim == 2 else arr


def bootstrap_ratio(
    reference_times: Sequence[float] | np.ndarray,
    times: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Ratio:
    """The ratio ``median(reference_times) / median(times)`` with a percentile-bootstrap interval.

    Both are per-round medians paired by round (index ``i`` of each was measured in the same
    round); a 2-D ``rounds x calls`` array is reduced to its per-round medians first. Rounds are
    resampled with replacement, keeping the pairs together, so drift shared by a round cancels.
    Fewer than ``MIN_CI_ROUNDS`` (6) rounds give an unknown interval ``[0, inf]`` ("no clear
    difference"): so few rounds cannot support a 95% interval.
    """
    ref, own = _as_rounds(reference_times, "reference_times"), _as_rounds(times, "times")
    if len(ref) != len(own):
        raise InvalidInputError(
            f"reference_times and times must be paired by round (same length), received {len(ref)} and {len(own)} "
            "rounds."
        )
    if not is_int(n_boot, 100):
        raise InvalidInputError(f"n_boot must be an int >= 100, received {n_boot!r}. Try n_boot=2000.")
    if not (is_number(confidence) and 0 < confidence < 1):
        raise InvalidInputError(f"confidence must be a number in (0, 1), received {confidence!r}. Try 0.95.")
    value = float(np.median(ref) / np.median(own))
    n = len(ref)
    if n < MIN_CI_ROUNDS:
        return Ratio(value, 0.0, math.inf, n, confidence)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boots = np.median(ref[idx], axis=1) / np.median(own[idx], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return Ratio(value, float(min(low, value)), float(max(high, value)), n, confidence)


@dataclass(eq=False)
class Interleaved:
    """Times of callables measured interleaved (``measure_interleaved``).

    ``times[label]``: seconds of the kept calls (each block's first call dropped), in call order;
    ``round_medians[label]``: one median per round, paired across labels by round; ``stopped``:
    why the measurement ended (``"tight"``, ``"budget"``, ``"max_rounds"`` or ``"cancelled"``).
    """

    times: dict[str, np.ndarray]
    round_medians: dict[str, np.ndarray]
    reference: str
    rounds: int
    stopped: str
    block: int
    elapsed_s: float
    rel_ci: float = 0.05
    _ratios: dict[tuple[str, str], Ratio] = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> list[str]:
        return list(self.times)

    def _check_label(self, label: str) -> None:
        if label not in self.times:
            raise InvalidInputError(f"No runner {label!r} in this measurement; the labels are {self.labels}.")

    def median(self, label: str) -> float:
        """Median seconds of ``label``'s kept calls (NaN if none were kept)."""
        self._check_label(label)
        values = self.times[label]
        return float(np.median(values)) if len(values) else math.nan

    def percentile(self, label: str, q: float) -> float:
        """The ``q``-th percentile (0-100) of ``label``'s kept calls, in seconds."""
        self._check_label(label)
        if not (is_number(q) and q <= 100):
            raise InvalidInputError(f"q must be a percentile between 0 and 100, received {q!r}.")
        values = self.times[label]
        return float(np.percentile(values, q)) if len(values) else math.nan

    def ratio(self, label: str, reference: str | None = None) -> Ratio:
        """``reference``'s time / ``label``'s time with its bootstrap interval (> 1: ``label`` is faster)."""
        ref = self.reference if reference is None else reference
        self._check_label(label)
        self._check_label(ref)
        key = (label, ref)
        if key not in self._ratios:
            if self.rounds == 0:
                return Ratio(math.nan, 0.0, math.inf, 0)
            self._ratios[key] = bootstrap_ratio(self.round_medians[ref], self.round_medians[label])
        return self._ratios[key]

    def __bool__(self) -> bool:
        return self.rounds > 0

    def to_pandas(self) -> Any:
        """One row per label: median and p90 (seconds), kept calls, and the ratio to the reference."""
        import pandas as pd

        rows = []
        for label in self.labels:
            r = self.ratio(label) if label != self.reference and self.rounds else None
            rows.append({"label": label, "median": self.median(label), "p90": self.percentile(label, 90),
                         "calls": len(self.times[label]), "ratio": r.value if r else None,
                         "low": r.low if r else None, "high": r.high if r else None,
                         "verdict": r.verdict if r else None})
        return pd.DataFrame(rows)

    def _lines(self) -> list[list[str]]:
        rows = []
        for label in self.labels:
            ratio = "reference" if label == self.reference else (str(self.ratio(label)) if self.rounds else "-")
            verdict = "" if label == self.reference or not self.rounds else self.ratio(label).verdict
            rows.append([label, fmt_time(self.median(label)), str(len(self.times[label])), ratio, verdict])
        return rows

    def __repr__(self) -> str:
        parts = "; ".join(f"{r[0]} {r[1]}" + ("" if r[3] == "reference" else f" {r[3]}") for r in self._lines())
        return f"<Interleaved {self.rounds} rounds ({self.stopped}, {self.elapsed_s:.1f} s): {parts}>"

    def _repr_html_(self) -> str:
        table = html_table(["label", "median", "kept calls", f"speed-up vs {self.reference}", "verdict"], self._lines())
        flag = badge(self.stopped == "tight", self.stopped.upper())
        return f"<div>{flag} {self.rounds} rounds of {self.block} calls, {self.elapsed_s:.1f} s{table}</div>"


def _check_args(runners: Any, reference: Any, block: Any, min_rounds: Any, max_rounds: Any, budget_s: Any,
                rel_ci: Any, cancel: Any) -> list[str]:
    if not isinstance(runners, Mapping) or not runners:
        raise InvalidInputError(
            f"runners must be a non-empty dict of label -> callable, received {describe(runners)}. "
            "Example: {'eager': lambda: model(x), 'ort': lambda: session.run(None, feed)}."
        )
    for label, fn in runners.items():
        if not isinstance(label, str) or not callable(fn):
            raise InvalidInputError(f"runners must map str labels to callables, received {label!r}: {describe(fn)}.")
    if reference not in runners:
        raise InvalidInputError(f"reference must be one of the runners' labels {list(runners)}, received {reference!r}.")
    if not is_int(block, 2):
        raise InvalidInputError(f"block must be an int >= 2 (its first call is dropped), received {block!r}. Try 5.")
    if not is_int(min_rounds, 1) or not is_int(max_rounds, 1) or max_rounds < min_rounds:
        raise InvalidInputError(
            f"min_rounds and max_rounds must be ints >= 1 with min_rounds <= max_rounds, received "
            f"min_rounds={min_rounds!r}, max_rounds={max_rounds!r}."
        )
    if not (is_number(budget_s) and budget_s > 0):
        raise InvalidInputError(f"budget_s must be a number of seconds > 0, received {budget_s!r}. Try 10.")
    if not (is_number(rel_ci) and rel_ci > 0):
        raise InvalidInputError(f"rel_ci must be a number > 0 (e.g. 0.05 for +-5%), received {rel_ci!r}.")
    check_cancel(cancel)
    return list(runners)


def _run_block(label: str, fn: Callable[[], Any], block: int) -> np.ndarray:
    """Time ``block`` calls of ``fn`` one by one; return the times of all but the first."""
    clock = time.perf_counter_ns
    ns = [0] * block
    try:
        for i in range(block):
            start = clock()
            fn()
            ns[i] = clock() - start
    except WorkbenchError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"Runner {label!r} failed while being timed: {type(exc).__name__}: {str(exc).strip()[:600]}. "
            "Call it once by hand to check it runs."
        ) from exc
    return np.asarray(ns[1:], dtype=float) / 1e9


#: Resamples of the stop rule's interval (the reported one uses ``bootstrap_ratio``'s 2000).
_CHECK_BOOT = 500


def _tight(medians: dict[str, list[float]], labels: list[str], reference: str, rel_ci: float) -> bool:
    """True when every ratio to the reference has an interval narrower than ``rel_ci`` each side."""
    ref = np.asarray(medians[reference])
    return all(bootstrap_ratio(ref, np.asarray(medians[lab]), n_boot=_CHECK_BOOT).rel_half_width < rel_ci
               for lab in labels if lab != reference)


def measure_interleaved(
    runners: Mapping[str, Callable[[], Any]],
    *,
    reference: str,
    block: int = 5,
    min_rounds: int = 3,
    max_rounds: int = 30,
    budget_s: float = 10.0,
    rel_ci: float = 0.05,
    cancel: Cancel = None,
) -> Interleaved:
    """Time no-argument callables interleaved: each round calls every runner ``block`` times in a
    row (the round's order shuffled each round with a fixed seed, so every target follows every other
    about equally often), timing each call and dropping each block's
    first. After ``min_rounds`` rounds it stops as soon as every ratio to ``reference`` has a
    bootstrap interval within ``rel_ci`` (relative, each side) of its value (``"tight"``), the
    ``budget_s`` seconds are spent (``"budget"``), or ``max_rounds`` were run. ``cancel`` is checked
    before every block; a cancelled measurement keeps its complete rounds (``"cancelled"``).
    A runner that raises stops the measurement with an ``InvalidInputError`` naming it.
    """
    labels = _check_args(runners, reference, block, min_rounds, max_rounds, budget_s, rel_ci, cancel)
    start = time.perf_counter()
    kept: dict[str, list[np.ndarray]] = {lab: [] for lab in labels}
    medians: dict[str, list[float]] = {lab: [] for lab in labels}
    rounds, stopped, checked = 0, "max_rounds", 0
    schedule = random.Random(0)  # a fixed seed: the same order of blocks on every run
    while rounds < max_rounds:
        order = list(labels)
        schedule.shuffle(order)
        this_round: dict[str, np.ndarray] = {}
        for label in order:
            if is_cancelled(cancel):
                break
            this_round[label] = _run_block(label, runners[label], block)
        if len(this_round) < len(labels):
            stopped = "cancelled"
            break
        for label, values in this_round.items():
            kept[label].append(values)
            medians[label].append(float(np.median(values)))
        rounds += 1
        if rounds < min_rounds:
            continue
        # The interval is checked after min_rounds and then each time the rounds grew by a tenth:
        # a bootstrap per round would cost more than the calls of a fast target.
        if rounds - checked >= max(1, rounds // 10) or rounds == min_rounds:
            checked = rounds
            if _tight(medians, labels, reference, rel_ci):
                stopped = "tight"
                break
        if time.perf_counter() - start >= budget_s:
            stopped = "budget"
            break
    return Interleaved(
        times={lab: np.concatenate(kept[lab]) if kept[lab] else np.zeros(0) for lab in labels},
        round_medians={lab: np.asarray(medians[lab], dtype=float) for lab in labels},
        reference=reference, rounds=rounds, stopped=stopped, block=block,
        elapsed_s=time.perf_counter() - start, rel_ci=rel_ci,
    )
