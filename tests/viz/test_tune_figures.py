"""Tune figures: latency vs error per candidate (the Pareto front, the references), speed-ups per shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import viz
from workbench.core.paired import Ratio
from workbench.core.session import SessionConfig
from workbench.core.tune_results import Candidate, CandidateResult, Reference, ShapeTiming, TuneResult
from workbench.errors import InvalidInputError
from workbench.viz.tune import pareto_front

GRID = [(1, 16), (4, 16)]


def _timings(p50: float, speedup: float | None, *, clear: bool = True) -> list[ShapeTiming]:
    out = []
    for batch, seq in GRID:
        ratio = None
        if speedup is not None:
            low, high = (speedup * 0.95, speedup * 1.05) if clear else (0.9, 1.2)
            ratio = Ratio(speedup, low, high, 12)
        out.append(ShapeTiming(batch, seq, p50 * batch, 1.2 * p50 * batch, ratio))
    return out


def _candidate(name: str, status: str, p50: float | None, error: float | None, *, precision: str = "fp32",
               speedup: float | None = 1.2, why: str | None = None) -> CandidateResult:
    cand = Candidate(name, Path(f"/tmp/{len(name)}.onnx"), SessionConfig(intra_op_threads=1), precision, {})
    timings = _timings(p50, speedup) if p50 is not None else []
    return CandidateResult(cand, status, timings, error, error, None, 2**20, why)  # type: ignore[arg-type]


def tune_result(*, chosen: bool = True) -> TuneResult:
    cands = [
        _candidate("fp32 all", "passed", 10.0, 1e-6),
        _candidate("fp32 basic", "passed", 12.0, 2e-6),  # dominated by "fp32 all"
        _candidate("int8 per-channel", "chosen" if chosen else "passed", 5.0, 1e-2, precision="int8", speedup=2.0),
        _candidate("int8 <b>per-tensor</b>", "rejected", 4.0, 0.5, precision="int8", why="max abs 0.5 > atol"),
        _candidate("fp32 disable", "pruned", 20.0, 0.0),
        _candidate("fp16", "failed", None, None, precision="fp16", why="could not build <it>"),
    ]
    refs = [Reference("eager", _timings(12.0, None)), Reference("torch.compile", _timings(11.0, 1.05, clear=False)),
            Reference("torch int8", _timings(8.0, 1.5)), Reference("torch int8", [], error="not supported")]
    return TuneResult(cands, refs, GRID, cands[2] if chosen else None, {s: cands[2] for s in GRID},
                      "ORT int8 is 2x eager", 30.0, 25.0, "int8")


def _by_status(fig, status):
    return next(t for t in fig.data if t.meta.get("status") == status)


def test_pareto_figure_places_each_candidate_by_status_with_the_front_and_references():
    result = tune_result()
    fig = viz.pareto_figure(result)
    statuses = [t.meta["status"] for t in fig.data if t.meta.get("kind") == "candidates"]
    assert statuses == ["pruned", "rejected", "passed", "chosen"]  # the failed one has no numbers
    chosen = _by_status(fig, "chosen")
    assert list(chosen.x) == pytest.approx([result.chosen.latency_ms]) and list(chosen.y) == pytest.approx([1e-2])
    pruned = _by_status(fig, "pruned")
    assert list(pruned.y) == [viz.tune.ZERO_ERROR]  # an exact 0 stays on the log axis
    front = next(t for t in fig.data if t.meta.get("kind") == "front")
    assert list(front.x) == pytest.approx([result.chosen.latency_ms, 25.0, 50.0])  # int8, fp32 all, the pruned
    assert [c.name for c in pareto_front(result.candidates)] == [c.name for c in result.pareto()] == [
        "int8 per-channel", "fp32 all", "fp32 disable"]  # the same front as the core's
    assert fig.layout.yaxis.type == "log"
    lines = [t for t in fig.data if t.meta.get("kind") == "reference"]
    assert [t.meta["name"] for t in lines] == ["eager", "torch.compile", "torch int8"]  # the failed one left out
    assert list(lines[0].x) == pytest.approx([12.0 * 2.5] * 2) and fig.layout.xaxis.type != "log"
    assert "1 not (not timed yet, or failed)" in fig.layout.title.subtitle.text
    assert fig.layout.yaxis.range == (-9.2, 0.2) and fig.layout.yaxis.dtick == 1  # whole decades around 1e-9..0.5


def test_a_slow_outlier_puts_latency_on_a_log_axis():
    result = tune_result()
    result.candidates.append(_candidate("fp32 parallel", "pruned", 400.0, 1e-6))
    fig = viz.pareto_figure(result)
    assert fig.layout.xaxis.type == "log" and "log" in fig.layout.xaxis.title.text


def test_pareto_strings_are_escaped():
    fig = viz.pareto_figure(tune_result())
    rejected = _by_status(fig, "rejected")
    assert "&lt;b&gt;per-tensor&lt;/b&gt;" in rejected.hovertext[0] and "<b>per-tensor" not in rejected.hovertext[0]


def test_pareto_of_candidates_so_far_and_of_nothing():
    result = tune_result()
    live = viz.pareto_figure(result.candidates[:1])
    assert [t.meta["status"] for t in live.data] == ["passed"]  # no references yet
    empty = viz.pareto_figure([])
    assert not empty.data and "No candidate measured yet" in empty.layout.annotations[0].text
    with pytest.raises(InvalidInputError, match="TuneResult"):
        viz.pareto_figure("result.json")


def test_speedups_figure_has_the_chosen_and_each_reference_with_intervals():
    result = tune_result()
    fig = viz.tune_speedups_figure(result)
    assert [t.meta["name"] for t in fig.data] == ["ORT: int8 per-channel", "torch.compile", "torch int8"]
    chosen = fig.data[0]
    assert list(chosen.x) == ["1\u00d716", "4\u00d716"] and list(chosen.y) == pytest.approx([2.0, 2.0])
    assert list(chosen.error_y.array) == pytest.approx([0.1, 0.1])
    compiled = fig.data[1]
    assert list(compiled.marker.pattern.shape) == ["/", "/"]  # interval contains 1: hatched
    assert list(chosen.marker.pattern.shape) == ["", ""]


def test_speedups_without_a_choice_still_show_the_references():
    fig = viz.tune_speedups_figure(tune_result(chosen=False))
    assert [t.meta["name"] for t in fig.data] == ["torch.compile", "torch int8"]
    with pytest.raises(InvalidInputError, match="TuneResult"):
        viz.tune_speedups_figure([])


def test_figures_for_dispatches_a_tune_result():
    assert [name for name, _ in viz.figures_for(tune_result())] == ["pareto", "speedups"]
