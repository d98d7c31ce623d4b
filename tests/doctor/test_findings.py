"""Finding, Retry and Diagnosis as results: bool, text, HTML, DataFrame; a healthy model is ok."""

from __future__ import annotations

import warnings

import pytest
import torch

import workbench as wb
from workbench.doctor import Diagnosis, Finding, Retry, diagnose
from workbench.doctor.attempt import STAGE_NAMES, Setting


def _diagnosis(findings: list[Finding], stages: dict | None = None) -> Diagnosis:
    case = wb.ModelCase("toy", torch.nn.Identity(), (torch.zeros(1),), wb.ExportSpec(exporter="torchscript", opset=17))
    stages = stages or dict.fromkeys(STAGE_NAMES, True)
    return Diagnosis("Toy", Setting(case), stages, findings)


def _finding(severity: str = "error", ok: bool | None = True) -> Finding:
    retry = Retry("re-export at opset 14", {"opset": 14}, ok=ok, detail="export, checker pass")
    return Finding("OP002", "Opset 13 is too old for aten::triu", "aten::triu needs opset 14.",
                   {"op": "aten::triu", "module": "inner", "node": "/inner/Trilu", "location": "m.py:3"},
                   "wb.ExportSpec(..., opset=14)", retry, severity)  # type: ignore[arg-type]


def test_finding_text_row_and_html():
    f = _finding()
    assert f.module == "inner" and f.node == "/inner/Trilu" and f.location == "m.py:3"
    assert f.category == "operators"
    text = f.text()
    assert "[OP002]" in text and "cause:" in text and "evidence:" in text and "fix:" in text
    assert "re-export at opset 14 -> PASSES" in text
    assert "OP002" in repr(f) and "inner" in repr(f)
    row = f.row()
    assert row["code"] == "OP002" and row["retry_ok"] is True and row["module"] == "inner"
    html = f._repr_html_()
    assert "OP002" in html and "PASSES" in html and "<table" in html


def test_retry_truthiness():
    assert bool(Retry("x", ok=True)) and not bool(Retry("x", ok=False)) and not bool(Retry("x"))
    assert "not run" in Retry("x").describe() and "still fails" in Retry("x", ok=False, detail="d").describe()


def test_diagnosis_ok_needs_stages_and_no_errors():
    assert _diagnosis([]).ok
    assert not _diagnosis([_finding()]).ok
    assert _diagnosis([_finding("warning")]).ok
    failed = dict.fromkeys(STAGE_NAMES, True)
    failed["probe"] = False
    assert not _diagnosis([], failed).ok
    not_run = dict.fromkeys(STAGE_NAMES, None)
    assert not _diagnosis([], not_run).ok  # nothing was exported


def test_diagnosis_reports():
    d = _diagnosis([_finding(), _finding("warning", ok=False)])
    assert not bool(d) and d.codes == ["OP002", "OP002"] and d.finding("OP002") is d.findings[0]
    assert d.finding("DYN001") is None and d.errors == [d.findings[0]]
    text = d.text()
    assert text.startswith("Diagnosis of Toy (torchscript, opset 17") and "FAIL" in text
    assert "export: pass" in text and text.count("[OP002]") == 2
    assert "retry: PASSES" in repr(d) and "still fails" in repr(d)
    assert str(d) == text
    frame = d.to_pandas()
    assert list(frame["code"]) == ["OP002", "OP002"] and list(frame["retry_ok"]) == [True, False]
    assert "wb-diagnosis" in d._repr_html_() and d.first_divergent_node is None and d.node_errors == {}
    assert len(_diagnosis([]).to_pandas()) == 0


def test_healthy_model_is_ok(tmp_path):
    zm = wb.zoo.get("mlp", smoke=True)
    spec = zm.spec.replace(exporter="torchscript", opset=17)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = diagnose(zm.model, zm.example_inputs, spec=spec, work_dir=tmp_path)
    assert d.ok and bool(d) and d.findings == [], d.text()
    assert list(d.stages) == ["export", "summarize", "session", "compare", "values", "probe"]
    assert all(d.stages[s] is True for s in STAGE_NAMES)
    assert d.out is not None and d.out.exists() and d.comparison is not None and d.probe is not None
    assert d.work_dir == tmp_path and d.attempt is not None and d.attempt.results["probe"].summary
    assert "OK, 0 findings" in repr(d)


def test_bad_arguments_raise(tmp_path):
    zm = wb.zoo.get("mlp", smoke=True)
    with pytest.raises(wb.InvalidInputError, match=r"torch\.nn\.Module"):
        diagnose("not a model", zm.example_inputs)  # type: ignore[arg-type]
    with pytest.raises(wb.InvalidInputError, match="tuple of tensors"):
        diagnose(zm.model, [1, 2])
    with pytest.raises(wb.InvalidInputError, match="Unknown tolerance"):
        diagnose(zm.model, zm.example_inputs, tolerance="fp8")
    with pytest.raises(wb.SpecError, match="ExportSpec"):
        diagnose(zm.model, zm.example_inputs, spec={"exporter": "dynamo"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        diagnose(zm.model, zm.example_inputs, zm.spec)  # type: ignore[misc]  # spec is keyword-only
    with pytest.raises(wb.InvalidInputError, match="SessionConfig"):
        diagnose(zm.model, zm.example_inputs, config={"providers": []})  # type: ignore[arg-type]


def test_a_failing_rule_is_reported_not_raised(tmp_path, monkeypatch):
    import workbench.doctor.engine as diagnose_module

    def broken_rule(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(diagnose_module, "RUN_RULES", (broken_rule,) + diagnose_module.RUN_RULES[1:])
    zm = wb.zoo.get("mlp", smoke=True)
    spec = zm.spec.replace(exporter="torchscript", opset=17)
    d = diagnose(zm.model, zm.example_inputs, spec=spec, work_dir=tmp_path, retry=False)
    internal = d.finding("WB001")
    assert internal is not None and "boom" in internal.cause and "broken_rule" in internal.title
    assert "Traceback" in internal.evidence["traceback"] and d.ok  # the model itself is fine
