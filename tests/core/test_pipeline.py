"""run_pipeline on the smoke MLP: every stage as data, failures captured, dependencies respected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench.core import pipeline_stages
from workbench.core.pipeline import (
    QUICK,
    STAGE_NAMES,
    Budget,
    Converted,
    OptLevels,
    PipelineRun,
    StageResult,
    run_pipeline,
)
from workbench.errors import InvalidInputError, SpecError


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared with tests/test_cli.py's tour: the export cache makes every export after the first free.
    return tmp_path_factory.getbasetemp() / "mlp-tour"


@pytest.fixture(scope="module")
def events() -> list[tuple[str, str]]:
    return []


@pytest.fixture(scope="module")
def run(work_dir: Path, events: list[tuple[str, str]]) -> PipelineRun:
    return run_pipeline(wb.zoo.get("mlp", smoke=True), work_dir, quick=True,
                        progress=lambda stage, msg: events.append((stage, msg)))


def test_every_stage_runs_and_passes_on_the_mlp(run: PipelineRun):
    assert [s.name for s in run.stages] == list(STAGE_NAMES)
    assert {s.name: s.status for s in run.stages} == {name: True for name in STAGE_NAMES}, run
    assert run.ok and bool(run) and not run.failed and not run.cancelled
    assert all(s.exception is None and s.duration_s >= 0 for s in run.stages)


def test_stage_results_hold_the_core_results(run: PipelineRun, work_dir: Path):
    assert isinstance(run["export"].result, wb.ExportResult)
    assert run["export"].result.out == work_dir / "mlp.onnx" and (work_dir / "mlp.onnx").exists()
    assert isinstance(run["summarize"].result, wb.ModelSummary)
    comparison = run.result("compare")
    assert isinstance(comparison, wb.Comparison) and comparison.samples == 3
    assert [shapes[0][0] for shapes in comparison.input_shapes] == [2, 1, 3]
    assert isinstance(run.result("probe"), wb.ProbeReport)
    levels = run.result("optimize")
    assert isinstance(levels, OptLevels) and list(levels.latency) == ["disable", "basic", "extended", "all"]
    assert all(m.runs == QUICK.runs for m in levels.latency.values())
    for kind in ("int8", "fp16"):
        converted = run.result(kind)
        assert isinstance(converted, Converted) and converted.result.ok and converted.latency is not None
        assert converted.baseline is levels.latency["all"]  # FP32 timed once, reused
        assert converted.result.path.exists()
    sweep = run.result("sweep")
    assert isinstance(sweep, wb.SweepResult)
    assert {(r.config, r.batch, r.seq) for r in sweep.rows} == {
        (c, b, None) for c in ("eager", "CPU/all") for b in QUICK.batch_sizes}


def test_views_of_the_run(run: PipelineRun, events: list[tuple[str, str]]):
    df = run.to_pandas()
    assert list(df["stage"]) == list(STAGE_NAMES) and len(df) == len(STAGE_NAMES)
    assert {"status", "status_text", "duration_s", "summary", "exception"} <= set(df.columns)
    text = repr(run)
    assert "PipelineRun 'mlp' PASS" in text and all(name in text for name in STAGE_NAMES)
    page = run._repr_html_()
    assert "<table" in page and "plotly" not in page.lower()
    assert ("export", "started") in events and any(s == "sweep" and "/" in m for s, m in events)
    with pytest.raises(InvalidInputError, match="No stage named 'nope'"):
        run.stage("nope")


def test_a_failing_stage_is_captured_and_the_others_still_run(work_dir: Path, run: PipelineRun,
                                                               monkeypatch: pytest.MonkeyPatch):
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(pipeline_stages, "probe_shapes", boom)
    failed = run_pipeline(wb.zoo.get("mlp", smoke=True), work_dir, quick=True,
                          skip=["optimize", "int8", "fp16", "sweep"])
    probe = failed["probe"]
    assert probe.status is False and not probe and probe.exception == "RuntimeError: probe exploded"
    assert "probe exploded" in (probe.traceback or "") and isinstance(probe.error, RuntimeError)
    assert failed["export"].result.cached
    assert [failed[n].status for n in ("export", "summarize", "compare")] == [True, True, True]
    assert {failed[n].summary for n in ("optimize", "int8", "fp16", "sweep")} == {"skipped"}
    assert failed["sweep"].status is None
    assert not failed.ok and failed.failed == [probe]
    assert "FAIL" in repr(failed) and "probe exploded" in failed._repr_html_()


def test_a_failed_export_leaves_the_dependent_stages_not_run(tmp_path: Path):
    zm = wb.zoo.get("mlp", smoke=True)
    bad_spec = wb.ExportSpec(input_names=("a", "b"), output_names=("y",))
    failed = run_pipeline((zm.model, zm.example_inputs, bad_spec), tmp_path, quick=True)
    export = failed["export"]
    assert export.status is False and export.exception.startswith("SpecError")
    assert isinstance(export.error, SpecError)
    assert all(s.status is None and "needs export" in s.summary for s in failed.stages[1:])
    assert not failed.ok and not list(tmp_path.glob("*.onnx"))


def test_a_tuple_target_makes_inputs_from_the_spec(work_dir: Path, run: PipelineRun):
    zm = wb.zoo.get("mlp", smoke=True)
    budget = Budget(warmup=1, runs=3, batch=2, batch_sizes=(1, 3), sweep_runs=2, sweep_warmup=0)
    again = run_pipeline((zm.model, zm.example_inputs, zm.spec), work_dir, budget=budget,
                         skip=["optimize", "int8", "fp16"])
    assert again.name == "mlp" and again["export"].result.cached
    assert [again[n].status for n in ("summarize", "compare", "probe", "sweep")] == [True] * 4
    assert [s[0][0] for s in again.result("compare").input_shapes] == [2, 1, 3]
    assert sorted({r.batch for r in again.result("sweep").rows}) == [1, 3]


def test_cancel_before_the_start_runs_nothing(tmp_path: Path):
    cancelled = run_pipeline(wb.zoo.get("mlp", smoke=True), tmp_path, quick=True, cancel=lambda: True)
    assert cancelled.cancelled and not cancelled.ok
    assert all(s.status is None and s.summary == "cancelled" for s in cancelled.stages)


def test_bad_arguments_raise(tmp_path: Path):
    mlp = wb.zoo.get("mlp", smoke=True)
    with pytest.raises(InvalidInputError, match="Expected a wb.ModelCase or a tuple"):
        run_pipeline(42, tmp_path)
    with pytest.raises(InvalidInputError, match="Expected a wb.ModelCase"):
        run_pipeline("mlp", tmp_path)
    with pytest.raises(InvalidInputError, match="unknown stage"):
        run_pipeline(mlp, tmp_path, skip=["exprot"])
    with pytest.raises(InvalidInputError, match="cannot be skipped"):
        run_pipeline(mlp, tmp_path, skip=["export"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder"):
        run_pipeline(mlp, tmp_path / "file")
    with pytest.raises(InvalidInputError, match="Budget.runs"):
        Budget(runs=0)
    with pytest.raises(InvalidInputError, match="tuple"):
        run_pipeline((torch.nn.Linear(2, 2),), tmp_path)
    with pytest.raises(InvalidInputError, match="cancel must be"):
        run_pipeline(mlp, tmp_path, cancel=3)


def test_stage_result_is_tri_state():
    assert StageResult("x", True) and not StageResult("x", False) and not StageResult("x", None)
    assert [StageResult("x", s).status_text for s in (True, False, None)] == ["pass", "FAIL", "not run"]


def test_a_case_name_never_leaves_the_work_dir(tmp_path):
    """A case name is a label, not a path: '/' or '..' in it must not put the export elsewhere."""
    from workbench.core.pipeline_stages import file_stem

    assert file_stem("../../elsewhere/x") == "elsewhere_x"
    assert file_stem('"><b>') == "b"
    assert file_stem("...") == "model"
    case = wb.zoo.get("mlp", smoke=True)
    case.name = "../up/<b>"
    run = wb.run_pipeline(case, tmp_path / "w", quick=True, skip=("optimize", "int8", "fp16", "sweep", "probe"))
    assert run.stage("export").result.out.parent == tmp_path / "w"
