"""Exercise 12 (size the queue by Little's law): answers near throughput x budget pass; plausible wrong
answers get their own hint; junk never raises. ``WRONG_12`` follows the pattern of ``test_exercises.WRONG``
(make a wrong answer, a fragment of its hint); the reference answer, a real load test, runs in
``test_exercises.test_the_reference_answer_passes`` (it iterates over every exercise)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from workbench.core.serve import LoadLevel, LoadResult
from workbench.teaching import checks_serve, exercises

RATES = {1: 200.0, 8: 1200.0, 32: 1600.0}  # requests/s by concurrency: saturated at 1,600


def _level(concurrency: int, rps: float) -> LoadLevel:
    return LoadLevel(concurrency=concurrency, requests=int(rps), ok=int(rps), errors={}, throughput_rps=rps,
                     p50_ms=5.0, p95_ms=8.0, p99_ms=9.0, mean_batch=4.0, wrong=None)


def _load(rates: dict[int, float] = RATES) -> LoadResult:
    return LoadResult(levels=[_level(c, r) for c, r in rates.items()], url="http://127.0.0.1:1", duration_s=1.0,
                      client_cpu_s=0.3)


def _answer(max_queue: Any, load: Any = None) -> dict[str, Any]:
    return {"load": _load() if load is None else load, "max_queue": max_queue}


RIGHT = round(1600 * checks_serve.WAIT_BUDGET_S)  # 400

#: plausible wrong answers and a fragment of the hint each must get
WRONG_12: list[tuple[Callable[[], Any], str]] = [
    (lambda: _answer(1600 * 250), "multiply by seconds"),  # the budget taken in ms
    (lambda: _answer(round(1600 / checks_serve.WAIT_BUDGET_S)), "not rate / time"),
    (lambda: _answer(round(200 * checks_serve.WAIT_BUDGET_S)), "saturated rate"),  # the rate at concurrency 1
    (lambda: _answer(256), "default"),
    (lambda: _answer(4000), "too long"),
    (lambda: _answer(RIGHT, _load({1: 200.0})), "two or more concurrency levels"),
    (lambda: _answer(RIGHT, _load().to_pandas()), "LoadResult"),
    (lambda: _answer(float(RIGHT)), "whole number"),
]


def test_the_right_size_passes_with_the_wait_it_gives() -> None:
    for queue in (RIGHT, RIGHT + 30, RIGHT - 30):
        verdict = exercises.check("12", _answer(queue))
        assert verdict.status == "correct", repr(verdict) + (verdict.traceback or "")
    assert "waits about 250 ms (the budget: 250 ms)" in exercises.check("12", _answer(RIGHT)).message


@pytest.mark.parametrize("index", range(len(WRONG_12)))
def test_plausible_wrong_answers_get_their_hint(index: int) -> None:
    make, hint = WRONG_12[index]
    verdict = exercises.check("12", make())
    assert verdict.status == "not yet", repr(verdict) + (verdict.traceback or "")
    assert hint in verdict.message, verdict.message


def test_junk_gets_a_hint() -> None:
    for junk in (None, object(), "400", 400, {"max_queue": 400}, {"load": 3, "max_queue": 400}):
        verdict = exercises.check("12", junk)
        assert verdict.status == "not yet" and verdict.message, repr(verdict) + (verdict.traceback or "")
    no_answers = _load({1: 0.0, 8: 0.0})
    for level in no_answers.levels:
        level.ok, level.errors = 0, {503: 10}
    assert "no answered request" in exercises.check("12", _answer(1, no_answers)).message
