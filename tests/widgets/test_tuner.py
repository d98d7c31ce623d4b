"""Tuner: controls and traits follow each other; a real (short) ``wb.tune`` fills the Pareto plot
live, the table and the verdict; "Use this config" sets ``config``/``tuned_model``; Cancel keeps
what was measured; and in the dashboard the toggles, the diff and the sweep follow the tuned config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import traitlets

import workbench as wb
from workbench.widgets import Workbench
from workbench.widgets.netron import live_servers
from workbench.widgets.tuner import Tuner, usable_candidates

WAIT_S = 120
#: A short tune of a smoke model: the widget's plumbing, not the search's quality.
BUDGET_S = 20.0
#: The dashboard's tune: again with a larger budget where the first found too little (a busy machine).
RETRY_BUDGETS_S = (BUDGET_S, 40.0)


def _tuner(case: wb.ModelCase, onnx_model: Path | str = "", **options: Any) -> Tuner:
    return Tuner.from_case(case, onnx_model, batch_sizes=[1], budget_s=BUDGET_S, **options)


def test_controls_and_traits_follow_each_other(tc_smoke: wb.ModelCase) -> None:
    tuner = _tuner(tc_smoke)
    try:
        assert tuner.seq_lens == [tc_smoke.example_sizes()[1]] and tuner.seq_field.value == str(tuner.seq_lens[0])
        assert tuner.batch_field.value == "1" and tuner.budget_field.value == BUDGET_S
        tuner.batch_sizes = "2, 4"
        assert tuner.batch_sizes == [2, 4] and tuner.batch_field.value == "2, 4"
        tuner.seq_field.value = "8,16"  # the field moves the trait
        assert tuner.seq_lens == [8, 16]
        tuner.tolerance = "fp16"
        assert tuner.tolerance_picker.value == "fp16"
        tuner.tolerance_picker.value = "int8"
        assert tuner.tolerance == "int8"
        tuner.budget_field.value = 30.0
        assert tuner.budget_s == 30.0
        with pytest.raises(traitlets.TraitError, match="budget_s must be seconds"):
            tuner.budget_s = 0
        with pytest.raises(traitlets.TraitError, match="tolerance"):
            tuner.tolerance = "tight"
        tuner.batch_field.value = "one"
        assert tuner.state == "failed" and "batch sizes must be" in tuner.error
        assert "No ONNX model yet" not in tuner.status.value
        tuner.batch_field.value = "1"
        tuner.run()  # no ONNX file yet: said in the widget, nothing started
        assert tuner.state == "failed" and "export one first" in tuner.error
        tuner.use()
        assert tuner.state == "failed" and "run the tune first" in tuner.error and tuner.config is None
    finally:
        tuner.close()


@pytest.fixture(scope="module")
def bench(tc_smoke: wb.ModelCase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workbench, list[int]]]:
    """The dashboard of the smoke text classifier, exported, after one short real tune in its Tune tab;
    the number of candidates the tuner held at each live update."""
    folder = tmp_path_factory.mktemp("tuner")
    before = set(map(id, live_servers()))
    bench = Workbench.from_case(tc_smoke, out=folder / "tc.onnx")
    try:
        bench.export.export()
        assert bench.export.wait(WAIT_S) and bench.wait(WAIT_S)
        tuner = bench.tuner
        assert tuner.onnx_model == bench.onnx_model
        tuner.batch_sizes = [1]
        seen: list[int] = []
        tuner.observe(lambda change: seen.append(len(change["new"])), names="candidates")
        bench.select("tune")
        for budget in RETRY_BUDGETS_S:  # a busy machine (other tests, other work) may need the second
            seen.clear()
            tuner.budget_s = budget
            tuner.start_button.click()
            assert tuner.state == "running" and tuner.start_button.disabled and not tuner.cancel_button.disabled
            assert tuner.wait(WAIT_S), "the tune did not finish"
            if len(usable_candidates(tuner.result)) >= 2:
                break
        yield bench, seen
    finally:
        assert bench.wait(WAIT_S)
        bench.close()
    assert not [s for s in live_servers() if id(s) not in before], live_servers()


@pytest.fixture(autouse=True)
def _no_leaked_servers() -> Iterator[None]:
    """This module's dashboard lives across its tests (one tune for all): its Netron servers are checked
    when it closes (the ``bench`` fixture), not after each test."""
    yield


@pytest.mark.slow
def test_a_tune_fills_the_plot_live_then_shows_the_result(bench: tuple[Workbench, list[int]]) -> None:
    tuner, seen = bench[0].tuner, bench[1]
    result = tuner.result
    assert tuner.state == "done", tuner.error
    assert result is not None and result.candidates and tuner.candidates == result.candidates
    live = [n for n in seen if n]  # (the start empties the list)
    assert live[0] == 1 and live == sorted(live) and live[-1] == len(result.candidates)  # one at a time, live
    assert all(b - a <= 1 for a, b in zip(live, live[1:]))
    drawn = [t for t in tuner.pareto.data if t.meta.get("kind") == "candidates"]
    assert sum(len(t.x) for t in drawn) == sum(1 for c in result.candidates if c.timings and c.max_abs_error is not None)
    assert tuner.table.value.count("wb-tune-row") == len(result.candidates)
    assert "wb-tune-verdict" in tuner.verdict.value and tuner.progress.bar_style in ("success", "warning")
    assert not tuner.start_button.disabled and tuner.cancel_button.disabled
    usable = usable_candidates(result)
    assert all(c.status in ("chosen", "passed", "pruned") for c in usable)
    assert len(tuner.pickers.options) == len(usable) and tuner.use_button.disabled == (not usable)
    if result.chosen is not None:
        assert tuner.pickers.options[0][0].startswith(result.chosen.name) and tuner.speedups.data


@pytest.mark.slow
def test_use_this_config_moves_the_toggles_and_the_panels(tc_smoke: wb.ModelCase,
                                                          bench: tuple[Workbench, list[int]]) -> None:
    dash = bench[0]
    tuner, exported = dash.tuner, dash.export.onnx_model
    usable = usable_candidates(tuner.result)
    assert usable, tuner.result
    other = next((c for c in usable if str(c.candidate.onnx_model) != exported), None)
    picked = other or usable[0]
    tuner.pickers.value = usable.index(picked)
    tuner.use_button.click()
    config = picked.candidate.config
    assert tuner.config == config and tuner.tuned_model == str(picked.candidate.onnx_model)
    assert tuner.state == "done" and "In use" in tuner.status.value
    assert dash.toggles.config == dash.diff.config == dash.graph.config == dash.sweep.extra_config == config
    assert dash.serve.config == config
    assert dash.onnx_model == dash.diff.onnx_model == dash.sweep.onnx_model == str(picked.candidate.onnx_model)
    assert tuner.onnx_model == exported  # the tuner keeps tuning the export
    assert f"Tuned config in use: <code>{config.label()}</code>" in dash.in_use.value
    if other is not None:  # another file (INT8, fused): the diff checks it at the gate it passed
        assert dash.diff.tolerance == tuner.gate == "int8" and "the tuned file" in dash.in_use.value
    assert dash.wait(WAIT_S) and dash.diff.comparison is not None and dash.diff.comparison.ok, dash.diff.error
    tuner.use("no such candidate")
    assert tuner.state == "failed" and "no such candidate" in tuner.error and tuner.config == config

    dash.export.export()  # the next export: the panels follow the exported file and its tolerance again
    assert dash.export.wait(WAIT_S) and dash.onnx_model == exported == dash.diff.onnx_model
    assert dash.diff.tolerance == tc_smoke.tolerance and dash.toggles.config == config
    assert f"<code>{config.label()}</code>." in dash.in_use.value and "tuned file" not in dash.in_use.value
    dash.toggles.opt_level.value = "basic" if config.opt_level != "basic" else "all"  # the user moves on
    assert dash.in_use.value == ""
    assert dash.wait(WAIT_S)
    assert dash.wait(WAIT_S)


@pytest.mark.slow
def test_cancel_keeps_what_was_measured(tc_smoke: wb.ModelCase, bench: tuple[Workbench, list[int]]) -> None:
    tuner = _tuner(tc_smoke, bench[0].export.onnx_model)
    try:
        tuner.budget_s = 60.0
        tuner.run()
        tuner.cancel()
        assert tuner.wait(WAIT_S) and tuner.state == "cancelled", tuner.error
        assert tuner.result.cancelled and tuner.result.elapsed_s < 30 and tuner.result.chosen is None
        assert "Cancelled" in tuner.status.value and tuner.use_button.disabled
        tuner.run()
    finally:
        tuner.close()  # cancels the second run and waits for it
    assert not tuner._worker.running


def test_usable_candidates_leave_out_static_shape_files() -> None:
    """A static-shape candidate runs at one shape only: "Use this config" would run it at every shape."""
    from workbench.core.paired import Ratio
    from workbench.core.tune_results import Candidate, CandidateResult, ShapeTiming, TuneResult

    def result(name: str, shapes: Any = None) -> CandidateResult:
        timing = ShapeTiming(1, 8, 1.0, 1.2, Ratio(2.0, 1.8, 2.2, 6))
        return CandidateResult(Candidate(name, Path(f"/x/{name}.onnx"), wb.SessionConfig(), shapes=shapes),
                               "passed", [timing], 0.01)

    whole, static = result("whole"), result("static 1x8", shapes=((1, 8),))
    tuned = TuneResult([static, whole], [], [(1, 8)], None, {}, "v", 10, 5, "int8")
    assert [c.name for c in usable_candidates(tuned)] == ["whole"]
