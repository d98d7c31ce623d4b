"""Paired, interleaved timing (core/paired.py): the structure of the measurement, the bootstrap
interval's logic, the stop reasons and the argument checks. No test asserts a speed beyond a
64x difference in work."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from workbench.core.paired import MIN_CI_ROUNDS, Interleaved, Ratio, bootstrap_ratio, measure_interleaved
from workbench.errors import InvalidInputError


def _matmul(n: int):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    return lambda: a @ a


def test_real_work_of_different_sizes_gives_a_clear_ratio_both_ways() -> None:
    result = measure_interleaved({"big": _matmul(256), "small": _matmul(64)}, reference="big",
                                 budget_s=3.0, rel_ci=0.2)
    small = result.ratio("small")
    assert small.clear and small.verdict == "faster" and small.value > 1
    assert small.low <= small.value <= small.high and small.n == result.rounds
    big = result.ratio("big", reference="small")
    assert big.verdict == "slower" and big.high < 1
    assert result.median("small") < result.median("big")
    assert result.percentile("small", 90) >= result.median("small")
    assert result.stopped in ("tight", "budget", "max_rounds")
    assert set(result.to_pandas().columns) >= {"label", "median", "ratio", "low", "high", "verdict"}
    assert "small" in repr(result) and "<table" in result._repr_html_()


def test_bootstrap_interval_logic() -> None:
    base = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02]
    same = bootstrap_ratio(base, base)
    assert same.value == 1.0 and not same.clear and same.verdict == "no clear difference"
    double = bootstrap_ratio([2 * t for t in base], base)
    assert double.value == pytest.approx(2.0) and double.clear and double.verdict == "faster"
    assert double.low <= 2.0 <= double.high and double.n == 6
    half = bootstrap_ratio(base, [2 * t for t in base])
    assert half.verdict == "slower" and half.high < 1
    overlap = bootstrap_ratio([1.0, 1.5, 0.7, 1.2, 0.9, 1.1, 0.8], [1.0, 0.8, 1.3, 1.1, 0.95, 1.0, 1.2])
    assert overlap.low < 1 < overlap.high and overlap.verdict == "no clear difference"
    # Pairs stay together: a shared drift across rounds cancels, so the ratio is exactly 2.
    drift = 3.0 ** np.arange(8)
    assert bootstrap_ratio(2 * drift, drift).value == pytest.approx(2.0)
    assert bootstrap_ratio(2 * drift, drift).low == pytest.approx(2.0)
    # A rounds x calls array is reduced to per-round medians.
    two_d = bootstrap_ratio([[2.0, 2.0, 9.0]] * 6, [[1.0, 1.0, 1.0]] * 6)
    assert two_d.value == pytest.approx(2.0) and two_d.n == 6 and two_d.clear
    # Fewer than MIN_CI_ROUNDS rounds: the value, but no interval (three rounds on one side of 1
    # happen one time in four by chance).
    few = bootstrap_ratio([2.0, 2.1, 1.9], [1.0, 1.0, 1.0])
    assert MIN_CI_ROUNDS == 6 and few.value == pytest.approx(2.0)
    assert few.low == 0.0 and math.isinf(few.high) and not few.clear and math.isinf(few.rel_half_width)
    assert str(Ratio(1.4234, 1.35, 1.5, 10)) == "1.42x [1.35, 1.50]" and str(few) == "2.00x [no interval: 3 rounds]"
    with pytest.raises(Exception):
        Ratio(1.0, 0.9, 1.1, 3).value = 2.0  # frozen


def test_each_blocks_first_call_is_dropped_and_rounds_are_shuffled() -> None:
    calls: list[str] = []
    slow_first = 0.05

    def runner(label: str):
        def run() -> None:
            if not calls or calls[-1] != label:
                time.sleep(slow_first)  # only a block's first call comes right after another runner
            calls.append(label)
        return run

    result = measure_interleaved({"a": runner("a"), "b": runner("b"), "c": runner("c")}, reference="a",
                                 block=4, min_rounds=3, max_rounds=3, rel_ci=1e-9)
    assert result.rounds == 3 and result.stopped == "max_rounds"
    assert len(calls) == 3 * 3 * 4
    firsts = [calls[i] for i in range(0, len(calls), 4)]
    rounds = [firsts[i:i + 3] for i in range(0, 9, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # every runner once per round
    for label in "abc":
        assert len(result.times[label]) == 3 * 3 and len(result.round_medians[label]) == 3
        assert result.times[label].max() < slow_first  # the slept call was never kept


def test_no_runner_always_follows_the_same_neighbour() -> None:
    """A rotated order (a b c, b c a, c a b) keeps the cycle: a always follows c. A runner that slows its
    successor (ONNX Runtime's spinning threads) would then bias one ratio; shuffled rounds spread it."""
    calls: list[str] = []
    runners = {lab: (lambda lab=lab: calls.append(lab)) for lab in "abc"}
    measure_interleaved(runners, reference="a", block=2, min_rounds=40, max_rounds=40, rel_ci=1e-9)
    firsts = [calls[i] for i in range(0, len(calls), 2)]
    before_a = {firsts[i - 1] for i in range(1, len(firsts)) if firsts[i] == "a" and firsts[i - 1] != "a"}
    assert before_a == {"b", "c"}


def test_budget_stop_keeps_min_rounds() -> None:
    nap = lambda: time.sleep(0.002)  # noqa: E731
    result = measure_interleaved({"x": nap, "y": nap}, reference="x", block=2, min_rounds=2, max_rounds=500,
                                 budget_s=0.05, rel_ci=1e-9)
    assert result.stopped == "budget" and 2 <= result.rounds < 500
    tiny = measure_interleaved({"x": nap}, reference="x", block=2, min_rounds=3, budget_s=1e-6, rel_ci=1e-9)
    assert tiny.rounds == 3 and tiny.stopped == "tight"  # only the reference: nothing to tighten


def test_loose_target_stops_tight_once_an_interval_exists() -> None:
    result = measure_interleaved({"ref": _matmul(128), "same": _matmul(128)}, reference="ref",
                                 min_rounds=3, max_rounds=200, budget_s=20, rel_ci=1e9)
    assert result.stopped == "tight" and result.rounds == MIN_CI_ROUNDS  # rounds 3-5 have no interval yet


def test_cancel_keeps_complete_rounds() -> None:
    event = threading.Event()
    count = [0]

    def run() -> None:
        count[0] += 1
        if count[0] == 3 * 2 * 2 + 1:  # first call of round 4
            event.set()

    result = measure_interleaved({"a": run, "b": run}, reference="a", block=2, max_rounds=50, rel_ci=1e-9,
                                 cancel=event)
    assert result.stopped == "cancelled" and result.rounds == 3
    assert len(result.times["a"]) == 3 and bool(result)
    nothing = measure_interleaved({"a": run}, reference="a", cancel=lambda: True)
    assert nothing.rounds == 0 and not nothing and math.isnan(nothing.median("a"))
    assert math.isnan(nothing.ratio("a").value)


def test_bad_inputs_raise_clear_errors() -> None:
    ok = lambda: None  # noqa: E731
    bad = [
        ({}, {}), ({"a": 3}, {}), ({1: ok}, {}), ({"a": ok}, {"reference": "b"}), ({"a": ok}, {"block": 1}),
        ({"a": ok}, {"min_rounds": 5, "max_rounds": 2}), ({"a": ok}, {"budget_s": 0}),
        ({"a": ok}, {"rel_ci": -1}), ({"a": ok}, {"cancel": "stop"}),
    ]
    for runners, kwargs in bad:
        kwargs.setdefault("reference", "a")
        with pytest.raises(InvalidInputError):
            measure_interleaved(runners, **kwargs)

    def broken() -> None:
        raise RuntimeError("boom")

    with pytest.raises(InvalidInputError, match="'b' failed.*boom"):
        measure_interleaved({"a": ok, "b": broken}, reference="a")
    for args, kwargs in [(([1.0, 2.0], [1.0]), {}), (([1.0, -1.0], [1.0, 1.0]), {}), (([], []), {}),
                         (([1.0], [1.0]), {"n_boot": 5}), (([1.0], [1.0]), {"confidence": 1.5}),
                         ((["x"], [1.0]), {})]:
        with pytest.raises(InvalidInputError):
            bootstrap_ratio(*args, **kwargs)
    result = measure_interleaved({"a": ok}, reference="a", max_rounds=3)
    assert isinstance(result, Interleaved)
    with pytest.raises(InvalidInputError, match="labels"):
        result.median("nope")
    with pytest.raises(InvalidInputError):
        result.percentile("a", 150)
