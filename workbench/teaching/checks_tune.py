"""Exercise 11 (tune) and its reference answer: read the Pareto front of a ``TuneResult``: the
candidates that passed the accuracy gate (chosen, passed, or pruned by the search after passing it)
and that no other such candidate beats on both latency and error."""

from __future__ import annotations

import functools
import math
from typing import Any

import workbench as wb
from workbench.teaching import tutorial
from workbench.teaching.checks import NotYet, _text_classifier, require

#: The budgets of the tune the reference answer reads, tried in turn until two candidates passed the gate
#: and were timed (smoke: without the torch.compile and torch int8 references; a busy machine may need the second).
SMOKE_BUDGETS_S, FULL_BUDGETS_S = (15.0, 30.0), (180.0,)

#: The statuses of a candidate that passed the accuracy gate (a pruned one passed it, then lost on speed).
PASSED = ("chosen", "passed", "pruned")


def _timed(result: Any) -> list[Any]:
    """The candidates that passed the gate and have a latency and an error to place on the plot."""
    return [c for c in result.candidates if c.status in PASSED and c.timings and math.isfinite(c.latency_ms)
            and c.max_abs_error is not None]


@functools.cache
def tuned() -> Any:
    """The tune of the shared text classifier export (once per process)."""
    case, result = _text_classifier()
    budgets = SMOKE_BUDGETS_S if tutorial.SMOKE else FULL_BUDGETS_S
    batch_sizes = [1] if tutorial.SMOKE else [1, 8]
    for budget in budgets:
        res = wb.tune(case.model, result.out, batch_sizes=batch_sizes, seq_lens=[case.example_sizes()[1]],
                      input_factory=case.input_factory, spec=result.spec, budget_s=budget,
                      work_dir=tutorial.work_dir("exercises") / "tune", **({"references": ()} if tutorial.SMOKE else {}))
        if len(_timed(res)) >= 2:
            break
    return res


def front_names(result: Any) -> list[str]:
    """The names on the Pareto front, fastest first (``TuneResult.pareto``, the plot's dashed line)."""
    return [c.name for c in result.pareto()]


def solution_11() -> dict[str, Any]:
    result = tuned()
    return {"result": result, "front": front_names(result)}


def _names(front: Any) -> list[str]:
    require(isinstance(front, (list, tuple, set)) and front,
            "'front' is a non-empty list of candidate names, e.g. ['int8 fused · all · t2', ...].")
    names = [getattr(getattr(c, "candidate", c), "name", c) for c in front]
    require(all(isinstance(n, str) for n in names), "'front' holds candidate names (str), or the candidates themselves.")
    return list(dict.fromkeys(names))


def _dominator(c: Any, timed: list[Any]) -> Any:
    """A candidate at least as fast and as accurate as ``c`` and better in one (None if none)."""
    return next((o for o in timed if o is not c and o.latency_ms <= c.latency_ms and o.max_abs_error <= c.max_abs_error
                 and (o.latency_ms < c.latency_ms or o.max_abs_error < c.max_abs_error)), None)


def _check_each(result: Any, names: list[str]) -> None:
    """Every name is a candidate of ``result`` that passed the gate and that nothing dominates."""
    known = {c.name: c for c in result.candidates}
    timed = _timed(result)
    for name in names:
        if name not in known:
            if name in [r.name for r in result.references]:
                raise NotYet(f"{name!r} is a reference (PyTorch's own), not an ONNX Runtime candidate: the front "
                             "holds candidates only.")
            raise NotYet(f"no candidate of this result is called {name!r}: copy the names from result.to_pandas().")
        c = known[name]
        require(c.status in PASSED, f"{name!r} was {c.status}: a candidate that did not pass the accuracy gate is "
                                    "not on the front, however fast (the red crosses).")
        require(c in timed, f"{name!r} has no latency or error to place on the plot.")
        better = _dominator(c, timed)
        if better is not None:
            raise NotYet(f"{name!r} is dominated: {better.name!r} is at least as fast ({better.latency_ms:.3g} ms vs "
                         f"{c.latency_ms:.3g} ms) and at least as accurate ({better.max_abs_error:.2g} vs "
                         f"{c.max_abs_error:.2g}).")


def check_11(answer: Any) -> str:
    require(isinstance(answer, dict) and {"result", "front"} <= set(answer),
            "answer with a dict: {'result': <your wb.tune result>, 'front': [<candidate names>]}.")
    result = answer["result"]
    require(all(hasattr(result, a) for a in ("candidates", "references", "pareto")),
            "'result' is what wb.tune(...) returned (a TuneResult).")
    names = _names(answer["front"])
    _check_each(result, names)
    truth = front_names(result)
    missing = [n for n in truth if n not in names]
    if missing:
        raise NotYet(f"{len(truth)} candidates are on the front, you named {len(names)}: for each level of error, the "
                     f"fastest candidate at or below it is on the front (missing one: {missing[0]!r}; its error is "
                     "lower than that of every faster candidate).")
    return (f"The front, fastest first: {', '.join(truth)}. Anything else is beaten on both latency and error by one "
            "of these, or did not pass the gate.")
