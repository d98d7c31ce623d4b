"""The ten exercise checks and their reference answers (``workbench.teaching.exercises`` runs them).

A check returns a sentence when the answer is right and raises ``NotYet(hint)`` when it is wrong.
Code that runs the learner's answer sits inside ``running_your_answer(...)``: its failures are a
verdict on the answer. Anything else that raises is the check's own bug, and ``exercises.check``
reports it as a checker error, never as a hint.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import torch

import workbench as wb
from workbench.errors import WorkbenchError, brief
from workbench.teaching import tutorial
from workbench.zoo import broken, custom_ops


class NotYet(Exception):
    """A wrong answer; the message is the hint."""


def require(condition: bool, hint: str) -> None:
    """Stop the check with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise NotYet(hint)


@contextlib.contextmanager
def running_your_answer(what: str) -> Iterator[None]:
    """Turn a ``WorkbenchError`` of code that runs the learner's answer (the workbench wraps what
    the exporter or ONNX Runtime raise) into a hint; anything else is the check's own error."""
    try:
        yield
    except WorkbenchError as exc:
        raise NotYet(f"{what} raised {brief(exc)}") from exc


class Exercise(NamedTuple):
    """An exercise's check (answer -> sentence, or ``NotYet``) and its reference answer."""

    check: Callable[[Any], str]
    solution: Callable[[], Any]


def _folder() -> Any:
    return tutorial.work_dir("exercises")


def _exported(name: str) -> tuple[wb.ModelCase, wb.ExportResult]:
    """A zoo model and the notebooks' shared export of it (a cache hit after the notebook made it)."""
    return _shared_export(name, tutorial.SMOKE, tutorial.shared(f"{name}.onnx"))


@functools.cache
def _shared_export(name: str, smoke: bool, out: Path) -> tuple[wb.ModelCase, wb.ExportResult]:
    case = wb.zoo.get(name, smoke=smoke)
    return case, wb.export(case.model, case.example_inputs, out, spec=case.spec)


def _text_classifier() -> tuple[wb.ModelCase, wb.ExportResult]:
    return _exported("text_classifier")


# ---------------------------------------------------------------- 01 export


def solution_01() -> wb.ExportSpec:
    return wb.ExportSpec(input_names=("pixel_values",), output_names=("logits",),
                         dynamic_axes={"pixel_values": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}})


def check_01(answer: Any) -> str:
    require(isinstance(answer, wb.ExportSpec), "build a wb.ExportSpec(input_names=..., output_names=..., dynamic_axes=...).")
    require(answer.input_names == ("pixel_values",) and answer.output_names == ("logits",),
            f"name the input 'pixel_values' and the output 'logits' (got {answer.input_names} and {answer.output_names}).")
    axes = answer.dynamic_axes.get("pixel_values", {})
    require(1 not in axes, "the channel dimension (1) is fixed by the convolution's weights: it cannot be dynamic.")
    require(set(axes) == {0, 2, 3}, f"make batch (0), height (2) and width (3) of pixel_values dynamic (got dims {sorted(axes)}).")
    require(len({axes[0], axes[2], axes[3]}) == 3,
            "give batch, height and width different names: one name on two dimensions says they are always equal.")
    require(0 in answer.dynamic_axes.get("logits", {}), "the output's batch dimension (logits, dim 0) should be dynamic too.")
    case = wb.zoo.get("image_classifier", smoke=tutorial.SMOKE)
    sizes = [{axes[0]: 1, axes[2]: 32, axes[3]: 48}, {axes[0]: 3, axes[2]: 80, axes[3]: 40}]
    with running_your_answer("exporting the image classifier with your spec"):
        result = wb.export(case.model, case.example_inputs, _folder() / "ex01_image_classifier.onnx", spec=answer)
    probes = wb.probe_shapes(case.model, result.out, case.example_inputs, spec=answer, sizes=sizes)
    require(bool(probes), f"the export does not run at other sizes: {probes!r}")
    dims = result.summary.inputs[0].shape_text
    return f"pixel_values is {dims} in the graph, and it matched PyTorch at {[c.label for c in probes.cases]}."


# ---------------------------------------------------------------- 02 inspect


def solution_02() -> dict[str, Any]:
    summary = _text_classifier()[1].summary
    return {"parameters": summary.parameter_count, "top_op": summary.ops.most_common(1)[0][0]}


def check_02(answer: Any) -> str:
    require(isinstance(answer, dict) and {"parameters", "top_op"} <= set(answer),
            "answer with a dict: {'parameters': <int>, 'top_op': <str>}.")
    summary = _text_classifier()[1].summary
    require(answer["parameters"] == summary.parameter_count,
            "count every element of every initializer: ModelSummary has a field for it.")
    top, count = summary.ops.most_common(1)[0]
    require(answer["top_op"] == top, "the op histogram (summary.ops, a Counter) knows which op type has the most nodes.")
    return f"{summary.parameter_count:,} parameters; {top} is the most frequent op ({count} nodes)."


# ---------------------------------------------------------------- 03 validate


def solution_03() -> list[dict[str, int]]:
    return [{"batch": 1, "seq": 1}, {"batch": 1, "seq": 512}, {"batch": 3, "seq": 512}, {"batch": 5, "seq": 1}]


def check_03(answer: Any) -> str:
    require(isinstance(answer, (list, tuple)) and bool(answer) and all(isinstance(s, dict) for s in answer),
            "answer with a list of size dicts, e.g. [{'batch': 1, 'seq': 1}, ...].")
    require(all(set(s) == {"batch", "seq"} and all(isinstance(v, int) and v >= 1 for v in s.values()) for s in answer),
            "each dict sets both axes, 'batch' and 'seq', to ints >= 1.")
    case, result = _exported("bert_like")
    longest = case.model.position_embeddings.num_embeddings
    require(any(s["batch"] == 1 for s in answer), "include batch 1: exporters treat size 1 specially.")
    require(any(s["seq"] == 1 for s in answer), "include the shortest sequence, a single token.")
    require(all(s["seq"] <= longest for s in answer),
            f"no sequence can be longer than the position table ({longest} rows): PyTorch itself fails there.")
    require(any(s["seq"] == longest for s in answer),
            "include the longest sequence the model accepts: the size of its position-embedding table.")
    probes = wb.probe_shapes(case.model, result.out, case.example_inputs, spec=case.spec, sizes=list(answer))
    require(bool(probes), f"some of these sizes fail: {probes!r}")
    return f"all {len(probes.cases)} edge cases match PyTorch (longest sequence: {longest})."


# ---------------------------------------------------------------- 04 optimize

_GELU_ENTRY = "optimization.enable_gelu_approximation"


def solution_04() -> wb.SessionConfig:
    return wb.SessionConfig(opt_level="all", config_entries={_GELU_ENTRY: "1"}, disabled_optimizers=("GeluApproximation",))


def check_04(answer: Any) -> str:
    require(isinstance(answer, wb.SessionConfig), "answer with a wb.SessionConfig(...).")
    require(answer.opt_level == "all", "keep opt_level='all': switch off one optimizer, not all of them.")
    require(answer.config_entries.get(_GELU_ENTRY) == "1",
            f"keep the config entry {_GELU_ENTRY!r}: '1' of the case's config; find the optimizer it turns on.")
    require(bool(answer.disabled_optimizers), "name the optimizer to switch off in disabled_optimizers=(...).")
    require(len(answer.disabled_optimizers) <= 2, "disable only the optimizer that drifts (its name is in the bisection).")
    case = broken.get("ort_gelu_approximation").build()
    out = wb.export(case.model, case.example_inputs, _folder() / "ex04_gelu.onnx", spec=case.spec).out
    with running_your_answer("a session with your config"):
        result = wb.compare(case.model, out, case.example_inputs, config=answer)
    require(bool(result), f"with this config the outputs still drift: max abs {result.max_abs:.3g}.")
    return f"disabling {list(answer.disabled_optimizers)} brings the max abs error down to {result.max_abs:.3g}."


# ---------------------------------------------------------------- 05 quantize


def solution_05() -> wb.QuantizeResult:
    case, result = _text_classifier()
    return wb.quantize_dynamic(result.out, _folder() / "ex05_matmul_only.int8.onnx", inputs=case.example_inputs,
                               op_types=["MatMul"])


def check_05(answer: Any) -> str:
    require(isinstance(answer, wb.QuantizeResult), "answer with what wb.quantize_dynamic(...) returns.")
    require(answer.kind == "int8-dynamic", "use wb.quantize_dynamic (dynamic INT8), not to_fp16.")
    require(answer.settings.get("op_types") == ["MatMul"], "pass op_types=['MatMul'] so only MatMul nodes are quantized.")
    require(answer.path.exists(), f"{answer.path} is gone: quantize again.")
    require(answer.ok, f"the accuracy gate failed: {answer.gate!r}")
    require(answer.after.get("DequantizeLinear", 0) == 0,
            "the embedding table should stay float32: no DequantizeLinear in front of the Gather.")
    return (f"{answer.bytes_before / 2**20:.2f} MiB -> {answer.bytes_after / 2**20:.2f} MiB with the embedding left in "
            f"float32 and {answer.after.get('MatMulInteger', 0)} MatMulInteger nodes; gate max abs {answer.gate.max_abs:.3g}.")


# ---------------------------------------------------------------- 06 providers

REQUESTED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def _fell_back() -> list[str]:
    case, result = _text_classifier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wb.placement(result.out, case.example_inputs, config=wb.SessionConfig(providers=REQUESTED)).fell_back


def solution_06() -> list[str]:
    return _fell_back()


def check_06(answer: Any) -> str:
    require(isinstance(answer, (list, tuple)) and all(isinstance(p, str) for p in answer),
            "answer with a list of provider names (it may be empty).")
    truth = _fell_back()
    require(sorted(answer) == sorted(truth),
            "run wb.placement with providers=('CUDAExecutionProvider', 'CPUExecutionProvider'): its result "
            "lists the requested providers that ran no node.")
    where = ", ".join(truth) if truth else "none: every requested provider ran nodes"
    return f"requested but unused here: {where}."


# ---------------------------------------------------------------- 07 benchmark


def _flops() -> int | None:
    return wb.graph_flops(_text_classifier()[1].out, {"input_ids": (4, 32)})


def solution_07() -> int | None:
    return _flops()


def check_07(answer: Any) -> str:
    require(isinstance(answer, int) and not isinstance(answer, bool), "answer with an int: FLOPs of one run.")
    truth = _flops()
    require(truth is not None and answer == truth,
            "count them from the graph at input_ids (4, 32): wb.graph_flops(onnx_model, {'input_ids': (4, 32)}).")
    return f"{answer:,} FLOPs per run at batch 4 x seq 32 ({answer / 1e9:.3f} GFLOP)."


# ---------------------------------------------------------------- 08 custom ops


def solution_08() -> dict[Any, Any]:
    return {custom_ops.library_op(): custom_ops.scaled_tanh_onnx}


def check_08(answer: Any) -> str:
    require(isinstance(answer, dict) and len(answer) == 1,
            "answer with a dict of one entry: {the PyTorch op overload: its onnxscript translation}.")
    key, fn = next(iter(answer.items()))
    require(key is custom_ops.library_op(),
            "the key is the op's overload, torch.ops.wbtutorial.scaled_tanh.default (custom_ops.library_op()).")
    require(callable(fn), "the value is the translation function, e.g. custom_ops.scaled_tanh_onnx.")
    case = custom_ops.model("library")
    with running_your_answer("exporting with your translation table"):
        result = wb.export(case.model, case.example_inputs, _folder() / "ex08_library.onnx", spec=case.spec,
                           use_cache=False, custom_translation_table=answer)
    comparison = wb.compare(case.model, result.out, [case.example_inputs, case.make_inputs(batch=4, seed=1)])
    require(bool(comparison), f"the translation exports but computes something else: {comparison!r}")
    return (f"exported with your table: ops {dict(result.summary.ops)}; PyTorch and ONNX Runtime agree "
            f"(max abs {comparison.max_abs:.3g}).")


# ---------------------------------------------------------------- 09 doctor


@functools.cache
def _drift_module() -> str | None:
    from workbench.doctor import gallery

    diagnosis = gallery.diagnose_case(broken.get("symbolic_drift"), retry=False)
    return diagnosis.divergence.module if diagnosis.divergence is not None else None


def solution_09() -> str | None:
    return _drift_module()


def check_09(answer: Any) -> str:
    require(isinstance(answer, str), "answer with the module's dotted path as a string, e.g. 'b1.lin'.")
    truth = _drift_module()
    require(answer == truth, "look at the diagnosis' divergence: its first divergent node belongs to a module.")
    return f"the graph first leaves PyTorch inside {truth!r}."


# ---------------------------------------------------------------- 10 IO binding


def solution_10() -> dict[str, torch.Tensor]:
    return {"logits": torch.empty(4, 10, dtype=torch.float32)}


def check_10(answer: Any) -> str:
    require(isinstance(answer, dict) and set(answer) == {"logits"} and isinstance(answer["logits"], torch.Tensor),
            "answer with {'logits': torch.empty(...)}: one tensor per model output.")
    buffer = answer["logits"]
    require(buffer.dtype == torch.float32, "the output is tensor(float): use dtype=torch.float32.")
    require(tuple(buffer.shape) == (4, 10), f"at batch 4 the output is [batch, classes] = (4, 10), got {tuple(buffer.shape)}.")
    require(buffer.is_contiguous() and buffer.device.type == "cpu", "use a contiguous tensor on the CPU.")
    case, result = _text_classifier()
    inputs = case.make_inputs(batch=4, seq=32)
    binder = wb.bound_session(result.out, inputs, preallocate=False)
    with running_your_answer("binding your tensor as the output"):
        binder.bind_outputs(answer)
    out = binder.run()
    require(out["logits"] is buffer, "run() should hand back your very tensor, filled in place.")
    expected = wb.open_session(result.out).run(None, {"input_ids": inputs[0].numpy()})[0]
    require(bool(torch.allclose(buffer, torch.from_numpy(expected), rtol=1e-5, atol=1e-6)),
            "the buffer was not filled with the model's output.")
    return f"ONNX Runtime wrote the logits straight into your tensor at {hex(buffer.data_ptr())}."


EXERCISES: dict[str, Exercise] = {
    "01": Exercise(check_01, solution_01), "02": Exercise(check_02, solution_02),
    "03": Exercise(check_03, solution_03), "04": Exercise(check_04, solution_04),
    "05": Exercise(check_05, solution_05), "06": Exercise(check_06, solution_06),
    "07": Exercise(check_07, solution_07), "08": Exercise(check_08, solution_08),
    "09": Exercise(check_09, solution_09), "10": Exercise(check_10, solution_10),
}
