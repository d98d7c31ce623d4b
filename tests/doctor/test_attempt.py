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


def test_what_torch_prints_goes_into_the_attempt_and_the_evidence_not_the_terminal(tmp_path, capfd):
    """The TorchScript exporter dumps "Torch IR graph at exception" (C++ stdout) when it fails; the
    doctor keeps it in the attempt and, trimmed, in the finding's evidence."""
    from workbench.doctor import gallery
    from workbench.zoo import broken

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diagnosis = gallery.diagnose_case(broken.get("unsupported_op"), retry=False, work_dir=tmp_path)
    seen = capfd.readouterr()
    assert "Torch IR graph" not in seen.out + seen.err
    assert "Torch IR graph at exception" in diagnosis.attempt.output["export"]
    finding = diagnosis.finding("OP001")
    assert finding is not None and finding.evidence["torch_output"].startswith("Torch IR graph at exception")
    assert len(finding.evidence["torch_output"]) <= 1600


def test_trimmed_keeps_the_first_lines_and_says_how_many_were_left_out():
    from workbench.doctor.attempt import trimmed

    text = "\n".join(f"line {i}" for i in range(30)) + "\n\n"
    short = trimmed(text, lines=3)
    assert short == "line 0\nline 1\nline 2\n… (27 more lines)"
    assert trimmed("") == "" and trimmed("one\n") == "one"
    assert len(trimmed("word " * 1000, chars=100)) <= 102
