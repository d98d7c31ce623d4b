"""Exercise 12 (notebook 12_serve): size the server's queue from a load test, by Little's law.

A request admitted to a full queue waits behind ``max_queue`` others, and the server works through
them at its saturated throughput, so it waits about ``max_queue / throughput``. For that wait to stay
within a budget, ``max_queue = throughput x budget``: past it, answering 503 at once (the client
retries elsewhere, or later) beats answering too late.
"""

from __future__ import annotations

from typing import Any

from workbench.teaching.checks import NotYet, require

#: How long a request may wait in the queue before it is better refused (seconds).
WAIT_BUDGET_S = 0.25
#: How far (relative) an answer may be from throughput x budget: rounding, and a rate read off a plot.
SLACK = 0.2
_FORM = "answer with a dict: {'load': <the LoadResult of your load test>, 'max_queue': <int>}."


def _load_result_type() -> type:
    from workbench.core.serve import LoadResult

    return LoadResult


def saturated_rps(load: Any) -> float:
    """The highest throughput (requests/s) over the load test's levels: the rate at which a full
    server works through its queue."""
    return max(float(level.throughput_rps) for level in load.levels)


def _near(value: float, target: float) -> bool:
    return target > 0 and abs(value - target) <= SLACK * target + 1


def solution_12() -> dict[str, Any]:
    """A short load test of the notebooks' shared text classifier export, and the queue it allows."""
    from workbench.core.serve import load_test, serve
    from workbench.teaching import tutorial
    from workbench.teaching.checks import _text_classifier

    case, result = _text_classifier()
    inputs = {"input_ids": case.make_inputs(batch=1, seq=16)[0].numpy()}
    with serve(result.out) as server:
        load = load_test(server, inputs, concurrency=(1, 16) if tutorial.SMOKE else (1, 8, 32),
                         duration_s=0.7 if tutorial.SMOKE else 3.0)
    return {"load": load, "max_queue": max(1, round(saturated_rps(load) * WAIT_BUDGET_S))}


def _checked_load(answer: Any) -> Any:
    require(isinstance(answer, dict) and {"load", "max_queue"} <= set(answer), _FORM)
    load = answer["load"]
    require(isinstance(load, _load_result_type()),
            "'load' is the LoadResult that wb.load_test returned (not a number, not a DataFrame).")
    require(len(load.levels) >= 2,
            "load-test at two or more concurrency levels, 1 among them, to see where the throughput stops growing.")
    require(any(level.ok > 0 for level in load.levels) and saturated_rps(load) > 0,
            "your load test has no answered request: is the server running? Look at its errors by status.")
    return load


def check_12(answer: Any) -> str:
    load = _checked_load(answer)
    queue = answer["max_queue"]
    require(isinstance(queue, int) and not isinstance(queue, bool) and queue >= 1,
            "'max_queue' is a whole number of requests, >= 1 (round your estimate).")
    rate = saturated_rps(load)
    target = rate * WAIT_BUDGET_S
    if _near(queue, target):
        return (f"max_queue={queue}: at {rate:,.0f} requests/s the last request admitted waits about "
                f"{queue / rate * 1e3:.0f} ms (the budget: {WAIT_BUDGET_S * 1e3:.0f} ms); the next one gets a 503 "
                "with Retry-After at once.")
    require(not _near(queue, rate * WAIT_BUDGET_S * 1e3),
            f"the budget is {WAIT_BUDGET_S * 1e3:.0f} ms = {WAIT_BUDGET_S} s: with the rate in requests per "
            "second, multiply by seconds.")
    require(not _near(queue, rate / WAIT_BUDGET_S),
            "Little's law multiplies: requests waiting = rate x time each waits, not rate / time.")
    lowest = min(load.levels, key=lambda level: level.concurrency)
    require(not _near(queue, float(lowest.throughput_rps) * WAIT_BUDGET_S),
            f"that is the rate at concurrency {lowest.concurrency}. A full queue is drained at the server's "
            "saturated rate: take the highest throughput of your load test.")
    require(queue != 256, "256 is wb.serve's default, not a size for this model: compute it from your load test.")
    wait_ms = queue / rate * 1e3
    raise_hint = "too long" if queue > target else "far shorter than it may"
    raise NotYet(f"with max_queue={queue} the last request admitted waits about {wait_ms:,.0f} ms at "
                 f"{rate:,.0f} requests/s: {raise_hint} against the {WAIT_BUDGET_S * 1e3:.0f} ms budget.")
