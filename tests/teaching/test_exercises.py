"""Every exercise: the reference answer passes, plausible wrong answers of the right type are
rejected with the right hint, junk is rejected, and a check that crashes is reported as a checker
error (never as "Not yet", which would let a broken check pass these tests)."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

import workbench as wb
from workbench.teaching import checks, exercises, tutorial
from workbench.zoo import broken, custom_ops


def _summary() -> Any:
    return checks._text_classifier()[1].summary


def _no_scale(x: Any, scale: float) -> Any:
    from onnxscript import opset18 as op

    return op.Tanh(x)  # forgets the scale: exports fine, computes something else


def _broken_translation(x: Any, scale: float) -> Any:
    raise RuntimeError("my translation broke")


def _drift_neighbours() -> list[str]:
    """The same layer in the block that does not drift, and the drifting layer's parent block."""
    truth = checks._drift_module()
    assert truth and "." in truth, f"the symbolic_drift diagnosis names {truth!r}"
    parent, leaf = truth.rsplit(".", 1)
    model = broken.get("symbolic_drift").build().model
    siblings = [name for name, _ in model.named_modules() if name.endswith(f".{leaf}") and name != truth]
    return [siblings[0], parent]


def _quantized(**kwargs: Any) -> Any:
    case, result = checks._text_classifier()
    name = "_".join(f"{k}" for k in kwargs) or "default"
    return wb.quantize_dynamic(result.out, tutorial.work_dir("tests") / f"{name}.int8.onnx",
                               inputs=case.example_inputs, **kwargs)


_AXES = {"logits": {0: "batch"}}
_SPEC = dict(input_names=("pixel_values",), output_names=("logits",))
_GELU = {"optimization.enable_gelu_approximation": "1"}

#: exercise -> [(make a plausible wrong answer, a fragment of the hint it must get)]
WRONG: dict[str, list[tuple[Callable[[], Any], str]]] = {
    "01": [
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "b", 1: "c", 2: "h", 3: "w"}, **_AXES}),
         "channel dimension"),
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch"}, **_AXES}), "height (2)"),
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch", 2: "size", 3: "size"}, **_AXES}),
         "different names"),
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch", 2: "h", 3: "w"}}), "logits, dim 0"),
    ],
    "02": [
        (lambda: {"parameters": _summary().node_count, "top_op": _summary().ops.most_common(1)[0][0]},
         "every element of every initializer"),
        (lambda: {"parameters": _summary().parameter_count, "top_op": _summary().ops.most_common(2)[1][0]},
         "op histogram"),
    ],
    "03": [
        (lambda: [{"batch": 1, "seq": 1}, {"batch": 2, "seq": 16}], "longest sequence"),
        (lambda: [{"batch": 1, "seq": 1}, {"batch": 1, "seq": 10_000}], "longer than the position table"),
        (lambda: [{"batch": 2, "seq": 1}, {"batch": 2, "seq": 64}], "include batch 1"),
    ],
    "04": [
        (lambda: wb.SessionConfig(opt_level="disable", config_entries=dict(_GELU)), "keep opt_level='all'"),
        (lambda: wb.SessionConfig(config_entries=dict(_GELU), disabled_optimizers=("ConstantFolding",)),
         "still drift"),
        (lambda: wb.SessionConfig(disabled_optimizers=("GeluApproximation",)), "keep the config entry"),
    ],
    "05": [
        (lambda: _quantized(), "op_types=['MatMul']"),
        (lambda: wb.to_fp16(checks._text_classifier()[1].out, tutorial.work_dir("tests") / "tc.fp16.onnx"),
         "not to_fp16"),
    ],
    "06": [
        (lambda: ["CPUExecutionProvider"], "lists the requested providers that ran no node"),
        (lambda: list(checks.REQUESTED), "lists the requested providers that ran no node"),
    ],
    "07": [
        (lambda: checks._flops() // 2, "wb.graph_flops"),  # multiply-adds, not FLOPs
        (lambda: wb.graph_flops(checks._text_classifier()[1].out, {"input_ids": (2, 16)}), "wb.graph_flops"),
    ],
    "08": [
        (lambda: {custom_ops.library_op(): _no_scale}, "computes something else"),
        (lambda: {torch.ops.aten.tanh.default: custom_ops.scaled_tanh_onnx}, "the key is the op's overload"),
        (lambda: {custom_ops.library_op(): "scaled_tanh_onnx"}, "the value is the translation function"),
        (lambda: {custom_ops.library_op(): _broken_translation}, "exporting with your translation table raised"),
    ],
    "09": [(lambda: _drift_neighbours()[0], "divergence"), (lambda: _drift_neighbours()[1], "divergence")],
    "10": [
        (lambda: {"logits": torch.empty(4, 10, dtype=torch.float64)}, "dtype=torch.float32"),
        (lambda: {"logits": torch.empty(10, 4)}, "(4, 10)"),
        (lambda: {"logits": torch.empty(10, 4).t()}, "contiguous"),
        (lambda: {"output": torch.empty(4, 10)}, "one tensor per model output"),
    ],
}
JUNK = (object(), "nonsense", 1.5, [{"batch": 0}], {"parameters": "many"})


def test_every_exercise_has_wrong_answers_to_reject():
    assert set(WRONG) == set(exercises.EXERCISES)
    assert all(WRONG.values())


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(exercises.EXERCISES))
def test_the_reference_answer_passes(number: str):
    verdict = exercises.check(number, exercises.solution(number))
    assert verdict.status == "correct", repr(verdict) + (verdict.traceback or "")
    assert verdict and repr(verdict).startswith(f"Correct! (exercise {number})")


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(exercises.EXERCISES))
def test_plausible_wrong_answers_are_rejected_with_their_hint(number: str):
    for make, hint in WRONG[number]:
        verdict = exercises.check(number, make())
        assert verdict.status == "not yet", repr(verdict) + (verdict.traceback or "")
        assert not verdict and hint in verdict.message, verdict.message


@pytest.mark.parametrize("number", sorted(exercises.EXERCISES))
def test_junk_gets_a_hint_and_never_raises(number: str):
    for junk in (None, *JUNK):
        verdict = exercises.check(number, junk)
        assert verdict.status == "not yet", repr(verdict) + (verdict.traceback or "")
        assert not verdict and verdict.message
        assert repr(verdict).startswith(f"Not yet (exercise {number}). Hint:")
        assert "Not yet." in verdict._repr_html_()


def test_a_crash_inside_a_check_is_a_checker_error(monkeypatch: pytest.MonkeyPatch):
    def broken_check(answer: Any) -> str:
        return {"a": 1}["b"]  # the check's own bug

    monkeypatch.setitem(exercises.EXERCISES, "02", checks.Exercise(broken_check, checks.solution_02))
    verdict = exercises.check("02", {"parameters": 1, "top_op": "MatMul"})
    assert verdict.status == "checker error" and verdict.crashed and not verdict
    assert "KeyError" in verdict.message and "broken_check" in (verdict.traceback or "")
    assert repr(verdict).startswith("Checker error (exercise 02)") and "Hint" not in repr(verdict)
    assert "Checker error." in verdict._repr_html_()


def test_only_the_answers_own_failures_become_hints():
    with pytest.raises(checks.NotYet, match="your step raised InvalidInputError: bad"):
        with checks.running_your_answer("your step"):
            raise wb.InvalidInputError("bad")
    with pytest.raises(TypeError):  # a bug of the check is not swallowed
        with checks.running_your_answer("your step"):
            raise TypeError("missing argument")


def test_html_escapes_the_message():
    verdict = exercises.CheckResult("01", "not yet", "<script>x</script>")
    assert "<script>" not in verdict._repr_html_() and "&lt;script&gt;" in verdict._repr_html_()


def test_unknown_exercise_and_solution_mode(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(wb.InvalidInputError, match="No exercise '99'"):
        exercises.check("99", 1)
    monkeypatch.delenv("WB_SOLUTIONS", raising=False)
    assert not exercises.solution_mode()
    monkeypatch.setenv("WB_SOLUTIONS", "1")
    assert exercises.solution_mode()
