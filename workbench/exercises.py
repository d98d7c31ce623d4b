"""The notebooks' exercises: ``check(id, answer)`` says whether an answer is right (or gives a
hint), ``solution(id)`` returns the reference answer.

    >>> from workbench import exercises
    >>> answer = None  # the learner's code
    >>> if exercises.solution_mode(): answer = exercises.solution("01")
    >>> exercises.check("01", answer)          # Correct! ... / Not yet. Hint: ...

A check never raises for a wrong answer: whatever goes wrong while checking it becomes the hint.
``WB_SOLUTIONS=1`` in the environment turns on ``solution_mode()`` (CI runs every notebook so).
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from workbench import tutorial, zoo
from workbench.core.compare import compare
from workbench.core.export import ExportResult, export
from workbench.core.spec import ExportSpec


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: ``bool()`` is whether it is right; ``message`` says why, or hints."""

    exercise: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return (f"Correct! (exercise {self.exercise}) {self.message}" if self.passed
                else f"Not yet (exercise {self.exercise}). Hint: {self.message}")

    def _repr_html_(self) -> str:
        color, bg, head = ("#1a7f37", "#dafbe1", "Correct!") if self.passed else ("#9a6700", "#fff8c5", "Not yet.")
        label = "" if self.passed else " Hint:"
        return (f"<div style='border-left:4px solid {color};background:{bg};padding:6px 10px'>"
                f"<b>{head}</b> <small>(exercise {self.exercise})</small>{label} {html.escape(self.message)}</div>")


class _NotYet(Exception):
    """Raised inside a check to stop with a hint."""


def _require(condition: bool, hint: str) -> None:
    if not condition:
        raise _NotYet(hint)


def solution_mode() -> bool:
    """True when ``WB_SOLUTIONS=1``: the exercise cells then take the reference answer."""
    return os.environ.get("WB_SOLUTIONS") == "1"


def _folder() -> Any:
    return tutorial.workdir("exercises")


def _text_classifier() -> tuple[zoo.ZooModel, ExportResult]:
    """The notebooks' shared export of the text classifier (a cache hit after notebook 01)."""
    zm = zoo.get("text_classifier", smoke=tutorial.SMOKE)
    return zm, export(zm.model, zm.example_inputs, tutorial.shared("text_classifier.onnx"), zm.spec)


@contextlib.contextmanager
def _quiet_logs(*names: str) -> Iterator[None]:
    """Loggers ``names`` at ERROR for the block (the exporter logs chatty warnings)."""
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


# ---------------------------------------------------------------- 01 export


def solution_01() -> ExportSpec:
    return ExportSpec(input_names=("pixel_values",), output_names=("logits",),
                      dynamic_axes={"pixel_values": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}})


def check_01(answer: Any) -> str:
    _require(isinstance(answer, ExportSpec), "build a wb.ExportSpec(input_names=..., output_names=..., dynamic_axes=...).")
    _require(answer.input_names == ("pixel_values",) and answer.output_names == ("logits",),
             f"name the input 'pixel_values' and the output 'logits' (got {answer.input_names} and {answer.output_names}).")
    axes = answer.dynamic_axes.get("pixel_values", {})
    _require(1 not in axes, "the channel dimension (1) is fixed by the convolution's weights: it cannot be dynamic.")
    _require(set(axes) == {0, 2, 3}, f"make batch (0), height (2) and width (3) of pixel_values dynamic (got dims {sorted(axes)}).")
    _require(0 in answer.dynamic_axes.get("logits", {}), "the output's batch dimension (logits, dim 0) should be dynamic too.")
    zm = zoo.get("image_classifier", smoke=tutorial.SMOKE)
    result = export(zm.model, zm.example_inputs, _folder() / "ex01_image_classifier.onnx", answer)
    sizes = [{axes[0]: 1, axes[2]: 32, axes[3]: 48}, {axes[0]: 3, axes[2]: 80, axes[3]: 40}]
    from workbench.core.probe import probe_shapes

    probes = probe_shapes(zm.model, result.path, answer, zm.example_inputs, sizes=sizes)
    _require(bool(probes), f"the export does not run at other sizes: {probes!r}")
    dims = result.summary.inputs[0].shape_text
    return f"pixel_values is {dims} in the graph, and it matched PyTorch at {[c.label for c in probes.cases]}."


# ---------------------------------------------------------------- 02 inspect


def solution_02() -> dict[str, Any]:
    summary = _text_classifier()[1].summary
    return {"parameters": summary.parameter_count, "top_op": summary.op_histogram.most_common(1)[0][0]}


def check_02(answer: Any) -> str:
    _require(isinstance(answer, dict) and {"parameters", "top_op"} <= set(answer),
             "answer with a dict: {'parameters': <int>, 'top_op': <str>}.")
    summary = _text_classifier()[1].summary
    _require(answer["parameters"] == summary.parameter_count,
             "count every element of every initializer: ModelSummary has a field for it.")
    top, count = summary.op_histogram.most_common(1)[0]
    _require(answer["top_op"] == top, "the op histogram (a Counter) knows which op type has the most nodes.")
    return f"{summary.parameter_count:,} parameters; {top} is the most frequent op ({count} nodes)."


# ---------------------------------------------------------------- 03 validate


def solution_03() -> list[dict[str, int]]:
    return [{"batch": 1, "seq": 1}, {"batch": 1, "seq": 512}, {"batch": 3, "seq": 512}, {"batch": 5, "seq": 1}]


@functools.cache
def _bert() -> tuple[zoo.ZooModel, ExportResult]:
    zm = zoo.get("bert_like", smoke=tutorial.SMOKE)
    return zm, export(zm.model, zm.example_inputs, tutorial.shared("bert_like.onnx"), zm.spec)


def check_03(answer: Any) -> str:
    _require(isinstance(answer, (list, tuple)) and answer and all(isinstance(s, dict) for s in answer),
             "answer with a list of size dicts, e.g. [{'batch': 1, 'seq': 1}, ...].")
    _require(all(set(s) == {"batch", "seq"} and all(isinstance(v, int) and v >= 1 for v in s.values()) for s in answer),
             "each dict sets both axes, 'batch' and 'seq', to ints >= 1.")
    zm, result = _bert()
    longest = zm.model.position_embeddings.num_embeddings
    _require(any(s["batch"] == 1 for s in answer), "include batch 1: exporters treat size 1 specially.")
    _require(any(s["seq"] == 1 for s in answer), "include the shortest sequence, a single token.")
    _require(all(s["seq"] <= longest for s in answer),
             f"no sequence can be longer than the position table ({longest} rows): PyTorch itself fails there.")
    _require(any(s["seq"] == longest for s in answer),
             "include the longest sequence the model accepts: the size of its position-embedding table.")
    from workbench.core.probe import probe_shapes

    probes = probe_shapes(zm.model, result.path, zm.spec, zm.example_inputs, sizes=list(answer))
    _require(bool(probes), f"some of these sizes fail: {probes!r}")
    return f"all {len(probes.cases)} edge cases match PyTorch (longest sequence: {longest})."


# ---------------------------------------------------------------- 04 optimize

_GELU_ENTRY = "optimization.enable_gelu_approximation"


def solution_04() -> Any:
    from workbench.core.session import SessionConfig

    return SessionConfig(opt_level="all", config_entries={_GELU_ENTRY: "1"}, disabled_optimizers=("GeluApproximation",))


def check_04(answer: Any) -> str:
    from workbench.core.session import SessionConfig
    from workbench.doctor import gallery

    _require(isinstance(answer, SessionConfig), "answer with a wb.SessionConfig(...).")
    _require(answer.opt_level == "all", "keep opt_level='all': switch off one optimizer, not all of them.")
    _require(answer.config_entries.get(_GELU_ENTRY) == "1",
             f"keep the config entry {_GELU_ENTRY!r}: '1' of the case's config; find the optimizer it turns on.")
    _require(bool(answer.disabled_optimizers), "name the optimizer to switch off in disabled_optimizers=(...).")
    _require(len(answer.disabled_optimizers) <= 2, "disable only the optimizer that drifts (its name is in the bisection).")
    broken = gallery.get("ort_gelu_approximation").build()
    path = export(broken.model, broken.example_inputs, _folder() / "ex04_gelu.onnx", broken.spec).path
    result = compare(broken.model, path, broken.example_inputs, "fp32", config=answer)
    _require(bool(result), f"with this config the outputs still drift: max abs {result.max_abs:.3g}.")
    return f"disabling {list(answer.disabled_optimizers)} brings the max abs error down to {result.max_abs:.3g}."


# ---------------------------------------------------------------- 05 quantize


def solution_05() -> Any:
    from workbench.core.quantize import quantize_dynamic

    zm, result = _text_classifier()
    return quantize_dynamic(result.path, _folder() / "ex05_matmul_only.int8.onnx", inputs=zm.example_inputs,
                            op_types=["MatMul"])


def check_05(answer: Any) -> str:
    from workbench.core.quantize import QuantizeResult

    _require(isinstance(answer, QuantizeResult), "answer with what wb.quantize_dynamic(...) returns.")
    _require(answer.kind == "int8-dynamic", "use wb.quantize_dynamic (dynamic INT8), not to_fp16.")
    _require(answer.settings.get("op_types") == ["MatMul"], "pass op_types=['MatMul'] so only MatMul nodes are quantized.")
    _require(answer.path.exists(), f"{answer.path} is gone: quantize again.")
    _require(answer.ok, f"the accuracy gate failed: {answer.gate!r}")
    _require(answer.after.get("DequantizeLinear", 0) == 0,
             "the embedding table should stay float32: no DequantizeLinear in front of the Gather.")
    return (f"{answer.bytes_before / 2**20:.2f} MiB -> {answer.bytes_after / 2**20:.2f} MiB with the embedding left in "
            f"float32 and {answer.after.get('MatMulInteger', 0)} MatMulInteger nodes; gate max abs {answer.gate.max_abs:.3g}.")


# ---------------------------------------------------------------- 06 providers


_REQUESTED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _fell_back() -> list[str]:
    from workbench.core.placement import placement
    from workbench.core.session import SessionConfig

    zm, result = _text_classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return placement(result.path, SessionConfig(providers=_REQUESTED), zm.example_inputs).fell_back


def solution_06() -> list[str]:
    return _fell_back()


def check_06(answer: Any) -> str:
    _require(isinstance(answer, (list, tuple)) and all(isinstance(p, str) for p in answer),
             "answer with a list of provider names (it may be empty).")
    truth = _fell_back()
    _require(sorted(answer) == sorted(truth),
             "run wb.placement with providers=('CUDAExecutionProvider', 'CPUExecutionProvider'): its result "
             "lists the requested providers that ran no node.")
    where = ", ".join(truth) if truth else "none: every requested provider ran nodes"
    return f"requested but unused here: {where}."


# ---------------------------------------------------------------- 07 benchmark


def _flops() -> int | None:
    from workbench.core.flops import graph_flops

    return graph_flops(_text_classifier()[1].path, {"input_ids": (4, 32)})


def solution_07() -> int | None:
    return _flops()


def check_07(answer: Any) -> str:
    _require(isinstance(answer, int) and not isinstance(answer, bool), "answer with an int: FLOPs of one run.")
    truth = _flops()
    _require(truth is not None and answer == truth,
             "count them from the graph at input_ids (4, 32): wb.graph_flops(path, {'input_ids': (4, 32)}).")
    return f"{answer:,} FLOPs per run at batch 4 x seq 32 ({answer / 1e9:.3f} GFLOP)."


# ---------------------------------------------------------------- 08 custom ops


def solution_08() -> dict[Any, Any]:
    from workbench import tutorial_ops

    return {tutorial_ops.library_op(): tutorial_ops.scaled_tanh_onnx}


def check_08(answer: Any) -> str:
    from workbench import tutorial_ops
    from workbench.core.graph import summarize

    _require(isinstance(answer, dict) and len(answer) == 1,
             "answer with a dict of one entry: {the PyTorch op overload: its onnxscript translation}.")
    key, fn = next(iter(answer.items()))
    _require(key is tutorial_ops.library_op(),
             "the key is the op's overload, torch.ops.wbtutorial.scaled_tanh.default (tutorial_ops.library_op()).")
    _require(callable(fn), "the value is the translation function, e.g. tutorial_ops.scaled_tanh_onnx.")
    zm = tutorial_ops.model("library")
    path = _folder() / "ex08_library.onnx"
    with warnings.catch_warnings(), _quiet_logs("torch.onnx", "torch.export", "torch._dynamo"):
        warnings.simplefilter("ignore")
        torch.onnx.export(zm.model, zm.example_inputs, str(path), dynamo=True, custom_translation_table=answer,
                          input_names=list(zm.spec.input_names), output_names=list(zm.spec.output_names),
                          opset_version=zm.spec.opset, verbose=False)
    ops = dict(summarize(path).op_histogram)
    result = compare(zm.model, path, [zm.example_inputs, zm.make_inputs(batch=4, seed=1)])
    _require(bool(result), f"the translation exports but computes something else: {result!r}")
    return f"exported with your table: ops {ops}; PyTorch and ONNX Runtime agree (max abs {result.max_abs:.3g})."


# ---------------------------------------------------------------- 09 doctor


@functools.cache
def _drift_module() -> str | None:
    from workbench.doctor import gallery

    diagnosis = gallery.get("symbolic_drift").build().diagnose(retry=False)
    return diagnosis.divergence.module if diagnosis.divergence is not None else None


def solution_09() -> str | None:
    return _drift_module()


def check_09(answer: Any) -> str:
    _require(isinstance(answer, str), "answer with the module's dotted path as a string, e.g. 'b1.lin'.")
    truth = _drift_module()
    _require(answer == truth, "look at the diagnosis' divergence: its first divergent node belongs to a module.")
    return f"the graph first leaves PyTorch inside {truth!r}."


# ---------------------------------------------------------------- 10 IO binding


def solution_10() -> dict[str, torch.Tensor]:
    return {"logits": torch.empty(4, 10, dtype=torch.float32)}


def check_10(answer: Any) -> str:
    from workbench.core.iobinding import bound_session
    from workbench.core.session import open_session

    _require(isinstance(answer, dict) and set(answer) == {"logits"} and isinstance(answer["logits"], torch.Tensor),
             "answer with {'logits': torch.empty(...)}: one tensor per model output.")
    buffer = answer["logits"]
    _require(buffer.dtype == torch.float32, "the output is tensor(float): use dtype=torch.float32.")
    _require(tuple(buffer.shape) == (4, 10),
             f"at batch 4 the output is [batch, classes] = (4, 10), got {tuple(buffer.shape)}.")
    _require(buffer.is_contiguous() and buffer.device.type == "cpu", "use a contiguous tensor on the CPU.")
    zm, result = _text_classifier()
    inputs = zm.make_inputs(batch=4, seq=32)
    binder = bound_session(result.path, inputs, preallocate=False)
    binder.bind_outputs(answer)
    out = binder.run()
    _require(out["logits"] is buffer, "run() should hand back your very tensor, filled in place.")
    expected = open_session(result.path).run(None, {"input_ids": inputs[0].numpy()})[0]
    _require(bool(torch.allclose(buffer, torch.from_numpy(expected), rtol=1e-5, atol=1e-6)),
             "the buffer was not filled with the model's output.")
    return f"ONNX Runtime wrote the logits straight into your tensor at {hex(buffer.data_ptr())}."


EXERCISES: dict[str, tuple[Callable[[Any], str], Callable[[], Any]]] = {
    "01": (check_01, solution_01), "02": (check_02, solution_02), "03": (check_03, solution_03),
    "04": (check_04, solution_04), "05": (check_05, solution_05), "06": (check_06, solution_06),
    "07": (check_07, solution_07), "08": (check_08, solution_08), "09": (check_09, solution_09),
    "10": (check_10, solution_10),
}


def _known(exercise: str) -> tuple[Callable[[Any], str], Callable[[], Any]]:
    if exercise not in EXERCISES:
        from workbench.errors import InvalidInputError

        raise InvalidInputError(f"No exercise {exercise!r}. The exercises are {list(EXERCISES)}.")
    return EXERCISES[exercise]


def solution(exercise: str) -> Any:
    """The reference answer of an exercise ('01' ... '10')."""
    return _known(exercise)[1]()


def check(exercise: str, answer: Any) -> CheckResult:
    """Check an answer; never raises for a wrong one (what went wrong becomes the hint)."""
    checker = _known(exercise)[0]
    if answer is None:
        return CheckResult(exercise, False, "write your answer in the exercise cell above (it is still None).")
    try:
        return CheckResult(exercise, True, checker(answer))
    except _NotYet as hint:
        return CheckResult(exercise, False, str(hint))
    except Exception as exc:  # a wrong answer may break what the check runs; say so instead of raising
        text = " ".join(str(exc).split())[:400]
        return CheckResult(exercise, False, f"checking your answer raised {type(exc).__name__}: {text}")
