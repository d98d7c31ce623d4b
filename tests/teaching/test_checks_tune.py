"""Exercise 11 (name the candidates on the Pareto front): the reference answer passes on a real tune;
plausible wrong answers get their hint, on a result whose numbers are known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench.core.paired import Ratio
from workbench.core.session import SessionConfig
from workbench.core.tune_results import Candidate, CandidateResult, Reference, ShapeTiming, TuneResult
from workbench.teaching import checks_tune, exercises

GRID = [(1, 32)]


def _cand(name: str, status: str, p50_ms: float, error: float, *, precision: str = "fp32") -> CandidateResult:
    timing = ShapeTiming(1, 32, p50_ms, 1.1 * p50_ms, Ratio(1.0 / p50_ms, 0.9 / p50_ms, 1.1 / p50_ms, 10))
    candidate = Candidate(name, Path(f"/tmp/{name}.onnx"), SessionConfig(), precision)
    return CandidateResult(candidate, status, [timing], error, error, None, 1000)  # type: ignore[arg-type]


def known_result() -> TuneResult:
    """The front is int8 fused (fastest), fp32 fused (pruned after the gate, exact); fp32 all is dominated
    by fp32 fused; int8 broken is faster still but was rejected; fp32 basic failed."""
    cands = [_cand("int8 fused", "chosen", 0.2, 5e-3, precision="int8"),
             _cand("int8 broken", "rejected", 0.1, 0.4, precision="int8"),
             _cand("fp32 fused", "pruned", 0.3, 1e-7),
             _cand("fp32 all", "passed", 0.4, 1e-7),
             _cand("fp32 basic", "failed", float("nan"), float("nan"))]
    cands[-1].timings, cands[-1].max_abs_error = [], None
    return TuneResult(cands, [Reference("eager", [ShapeTiming(1, 32, 1.0, 1.2, None)])], GRID, cands[0],
                      {GRID[0]: cands[0]}, "Use 'int8 fused'", 20.0, 18.0, "int8")


#: A plausible wrong front (on the known result) and a fragment of the hint it must get.
WRONG: list[tuple[list[str], str]] = [
    (["int8 fused"], "2 candidates are on the front, you named 1"),  # the chosen one only
    (["int8 broken", "int8 fused", "fp32 fused"], "was rejected"),  # the fastest point, ignoring the gate
    (["int8 fused", "fp32 fused", "fp32 all"], "'fp32 all' is dominated: 'fp32 fused'"),  # every passed one
    (["eager", "int8 fused", "fp32 fused"], "is a reference"),
]


def test_the_front_of_a_known_result():
    result = known_result()
    assert checks_tune.front_names(result) == ["int8 fused", "fp32 fused"]
    for front in (["fp32 fused", "int8 fused"], [result.candidate("int8 fused"), "fp32 fused"]):  # any order, objects
        verdict = exercises.check("11", {"result": result, "front": front})
        assert verdict.status == "correct", repr(verdict) + (verdict.traceback or "")


@pytest.mark.parametrize("front, hint", WRONG, ids=[h for _, h in WRONG])
def test_plausible_wrong_fronts_get_their_hint(front: list[str], hint: str):
    verdict = exercises.check("11", {"result": known_result(), "front": front})
    assert verdict.status == "not yet", repr(verdict) + (verdict.traceback or "")
    assert hint in verdict.message, verdict.message


@pytest.mark.parametrize("answer, hint", [
    ({"front": ["int8 fused"]}, "answer with a dict"),
    ({"result": "res", "front": ["int8 fused"]}, "what wb.tune(...) returned"),
    ({"result": known_result(), "front": []}, "non-empty list"),
    ({"result": known_result(), "front": [3]}, "candidate names"),
    ({"result": known_result(), "front": ["fp32 nope"]}, "no candidate of this result is called"),
    ({"result": known_result(), "front": ["fp32 basic"]}, "was failed"),
])
def test_malformed_answers_get_a_hint(answer: dict[str, Any], hint: str):
    verdict = exercises.check("11", answer)
    assert verdict.status == "not yet" and hint in verdict.message, repr(verdict) + (verdict.traceback or "")


@pytest.mark.slow
def test_the_reference_answer_passes_on_a_real_tune():
    answer = exercises.solution("11")
    assert len(answer["front"]) >= 1, answer["result"]
    verdict = exercises.check("11", answer)
    assert verdict.status == "correct", repr(verdict) + (verdict.traceback or "")
