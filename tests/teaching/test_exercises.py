"""Every exercise: the reference answer passes, plausible wrong answers of the right type are
rejected with the right hint, junk is rejected, and a check that crashes is reported as a checker
error (never as "Not yet", which would let a broken check pass these tests)."""

from __future__ import annotations

from pathlib import Path

from typing import Any, Callable

import pytest
import torch

import workbench as wb
from workbench.teaching import checks, checks_later, exercises, tutorial
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
    truth = checks_later._drift_module()
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


def _ex02(**change: Any) -> dict[str, Any]:
    """The reference answer of 02 with one thing changed."""
    return {**exercises.solution("02"), **change}


def _ex02_weights_inside() -> dict[str, Any]:
    """The shared export keeps its weights inside the .onnx file."""
    return _ex02(onnx_model=checks._text_classifier()[1].out)


def _ex02_initializer() -> dict[str, Any]:
    """The largest tensor counted among the weights (the embedding table), not the activations."""
    import math

    import onnx

    answer = exercises.solution("02")
    model = onnx.load(str(answer["onnx_model"]), load_external_data=False)
    return {**answer, "largest": max(math.prod(t.dims) for t in model.graph.initializer)}


_BERT_EDGES = [{"batch": 1, "seq": 1}, {"batch": 1, "seq": 512}, {"batch": 3, "seq": 512}, {"batch": 5, "seq": 1}]


def _ex03_not_worst() -> dict[str, Any]:
    """A size of the list that is not where the largest difference is (the single token: no attention mixing)."""
    cases = checks._bert_probe(_BERT_EDGES).cases
    return {"sizes": _BERT_EDGES, "worst": dict(min(cases, key=lambda c: c.max_abs or 0.0).sizes)}


def _threads(chosen: int, p50: dict[int, float]) -> dict[str, Any]:
    return {"intra_op_threads": chosen, "p50_ms": p50}


def _ex10(*, update: bool = True, rebind: bool = True, allocate: bool = True, run: bool = True) -> dict[str, Any]:
    """Exercise 10 done with one step left out."""
    case, result = checks._text_classifier()
    binder = wb.bound_session(result.out, case.make_inputs(batch=4, seq=32))
    if update:
        binder.update_inputs(case.make_inputs(batch=4, seq=32, seed=1))
    updated = binder.run()["logits"].clone()
    if rebind:
        binder.bind_inputs(case.make_inputs(batch=2, seq=16, seed=2))
        if allocate:
            binder.allocate_outputs()
            if run:
                binder.run()
    return {"binder": binder, "updated": updated}


_AXES = {"logits": {0: "batch"}}
_SPEC = dict(input_names=("pixel_values",), output_names=("logits",))
_GELU = {"optimization.enable_gelu_approximation": "1"}

#: exercise -> [(make a plausible wrong answer, a fragment of the hint it must get)]
WRONG: dict[str, list[tuple[Callable[[], Any], str]]] = {
    "01": [
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "b", 1: "c", 2: "h", 3: "w"}, **_AXES}),
         "channel dimension"),
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch"}, **_AXES}), "height (2)"),
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch", 2: "height"}, **_AXES}),
         "height (2) and width (3)"),  # fixed width
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch", 2: "size", 3: "size"}, **_AXES}),
         "different names"),  # square-only: one shared symbol
        (lambda: wb.ExportSpec(**_SPEC, dynamic_axes={"pixel_values": {0: "batch", 2: "h", 3: "w"}}), "logits, dim 0"),
    ],
    "02": [
        (_ex02_weights_inside, "external_data=True"),
        (_ex02_initializer, "are weights"),
        (lambda: _ex02(largest=checks._largest_activation(exercises.solution("02")["onnx_model"], 4, 32)[1]),
         "input_ids (3, 20)"),
        (lambda: _ex02(largest=str(exercises.solution("02")["largest"])), "input_ids (3, 20)"),
    ],
    "03": [
        (lambda: {"sizes": [{"batch": 1, "seq": 1}, {"batch": 2, "seq": 16}], "worst": {"batch": 1, "seq": 1}},
         "longest sequence"),
        (lambda: {"sizes": [{"batch": 1, "seq": 1}, {"batch": 1, "seq": 10_000}], "worst": {"batch": 1, "seq": 1}},
         "longer than the position table"),
        (lambda: {"sizes": [{"batch": 2, "seq": 1}, {"batch": 2, "seq": 64}], "worst": {"batch": 2, "seq": 1}},
         "include batch 1"),
        (_ex03_not_worst, "read max_abs"),
        (lambda: {"sizes": _BERT_EDGES, "worst": {"batch": 2, "seq": 7}}, "one of your sizes"),
    ],
    "04": [
        (lambda: wb.SessionConfig(opt_level="disable", config_entries=dict(_GELU)), "keep opt_level='all'"),
        (lambda: wb.SessionConfig(config_entries=dict(_GELU), disabled_optimizers=("ConstantFolding",)),
         "still drift"),
        (lambda: wb.SessionConfig(disabled_optimizers=("GeluApproximation",)), "keep the config entry"),
        (lambda: wb.SessionConfig(opt_level="all", config_entries=dict(_GELU),
                                  disabled_optimizers=("GeluApproximation", "ConstantFolding")), "only the optimizer"),
    ],
    "05": [
        (lambda: _quantized(), "op_types=['MatMul']"),
        (lambda: wb.to_fp16(checks._text_classifier()[1].out, tutorial.work_dir("tests") / "tc.fp16.onnx"),
         "not to_fp16"),
    ],
    "06": [
        (lambda: _threads(1, {1: 5.0}), "at least three thread counts"),
        (lambda: _threads(4, {1: 9.0, 2: 5.2, 4: 5.0}), "choose the fewest threads"),  # 2 is within 10% of 4
        (lambda: _threads(1, {1: 9.0, 2: 5.2, 4: 5.0}), "choose the fewest threads"),  # 1 is far slower
        (lambda: _threads(1, {1: 5.0, 2: 6.0, 16: 7.0}), "os.sched_getaffinity"),
    ],
    "07": [
        (lambda: checks_later._flops() // 2, "multiply-add is two"),  # multiply-adds, not FLOPs
        (lambda: wb.graph_flops(checks._text_classifier()[1].out, {"input_ids": (2, 16)}), "Per layer"),
        (lambda: int(checks_later.solution_07() * 0.8), "Per layer"),  # one projection forgotten, or the like
        (lambda: 2 * 4 * 64 * 10, "Per layer"),  # only the classifier
    ],
    "08": [
        (lambda: {custom_ops.library_op(): _no_scale}, "computes something else"),
        (lambda: {custom_ops.library_op(): custom_ops.scaled_tanh_onnx}, "write your own"),
        (lambda: {torch.ops.aten.tanh.default: checks_later._my_scaled_tanh}, "the key is the op's overload"),
        (lambda: {custom_ops.library_op(): "scaled_tanh_onnx"}, "the value is your translation function"),
        (lambda: {custom_ops.library_op(): _broken_translation}, "exporting with your translation table raised"),
    ],
    "09": [
        (lambda: {"module": _drift_neighbours()[0], "cause": "export"}, "divergence"),
        (lambda: {"module": _drift_neighbours()[1], "cause": "export"}, "divergence"),
        (lambda: {"module": checks_later._drift_module(), "cause": "optimization"}, "no optimizer did it"),
        (lambda: checks_later._drift_module(), "answer with a dict"),
    ],
    "10": [
        (lambda: _ex10(update=False), "update_inputs"),
        (lambda: _ex10(rebind=False), "bind the new shape"),
        (lambda: _ex10(allocate=False), "allocate_outputs()"),
        (lambda: _ex10(run=False), "run the binder again"),
        (lambda: {"binder": _ex10()["binder"], "updated": torch.empty(10, 4)}, "(4, 10) logits"),
    ],
}
JUNK = (object(), "nonsense", 1.5, [{"batch": 0}], {"parameters": "many"})


#: exercises whose plausible wrong answers are tested in a module of their own
OWN_MODULE = {"11": "test_checks_tune.py", "12": "test_checks_serve.py"}


def test_every_exercise_has_wrong_answers_to_reject():
    assert set(WRONG) | set(OWN_MODULE) == set(exercises.EXERCISES)
    assert not set(WRONG) & set(OWN_MODULE)
    assert all(WRONG.values())
    here = Path(__file__).parent
    assert all((here / module).is_file() for module in OWN_MODULE.values())


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(exercises.EXERCISES))
def test_the_reference_answer_passes(number: str):
    verdict = exercises.check(number, exercises.solution(number))
    assert verdict.status == "correct", repr(verdict) + (verdict.traceback or "")
    assert verdict and repr(verdict).startswith(f"Correct! (exercise {number})")


@pytest.mark.slow
@pytest.mark.parametrize("number", sorted(WRONG))
def test_plausible_wrong_answers_are_rejected_with_their_hint(number: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(checks_later, "usable_cpus", lambda: 8)  # the thread answers below assume 8 usable CPUs
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
