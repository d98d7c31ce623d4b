"""The doctor's attempt runs on core's stage machinery: one StageResult per stage, failures as data,
stages that need a failed one not run."""

from __future__ import annotations

import warnings

import torch
from torch import nn

import workbench as wb
from workbench.core.stages import StageResult
from workbench.doctor.attempt import STAGE_NAMES, STAGES, Setting, run_attempt


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ torch.ones(5, 5)  # shapes do not fit


def _run(case: wb.ModelCase, tmp_path, **changes):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_attempt(Setting(case).replace(**changes), tmp_path)


def test_stage_names_are_the_shared_vocabulary():
    assert STAGE_NAMES == ("export", "summarize", "session", "compare", "values", "probe")
    assert set(STAGE_NAMES) <= set(wb.STAGE_NAMES) | {"session", "values"}
    assert {s.name: s.needs for s in STAGES}["values"] == ("compare",)


def test_a_failing_export_is_data_and_stops_what_needs_it(tmp_path):
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), exporter="torchscript", opset=17)
    attempt = _run(wb.ModelCase("broken", Broken(), (torch.zeros(2, 4),), spec), tmp_path)
    export = attempt.results["export"]
    assert isinstance(export, StageResult) and export.status is False and export.error is not None
    assert export.exception and "\n" not in export.exception and attempt.error("export") is export.error
    assert attempt.failed_stage == "export" and attempt.failure().startswith("export fails: ")
    assert all(attempt.stages[s] is None for s in STAGE_NAMES[1:]) and not attempt.ok
    assert "needs export" in attempt.results["summarize"].summary and attempt.out is None


def test_a_passing_attempt_keeps_every_result(tmp_path):
    case = wb.zoo.get("mlp", smoke=True)
    spec = case.spec.replace(exporter="torchscript", opset=17)
    attempt = _run(case, tmp_path, spec=spec, eval_mode=True)
    assert attempt.ok and list(attempt.stages.values()) == [True] * len(STAGE_NAMES)
    assert attempt.out is not None and attempt.out.parent == tmp_path and attempt.summary.checker_ok
    assert attempt.comparison.ok and attempt.value_comparison.ok and attempt.probe.ok
    assert len(attempt.value_samples) == 3 and attempt.providers == ["CPUExecutionProvider"]
    assert attempt.failure().startswith("export, summarize, session, compare, values, probe pass")
    assert not case.model.training  # eval mode restored as it was
