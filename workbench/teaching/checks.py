"""Exercise checks 01-05 and their reference answers, with the helpers every check uses
(``checks_later`` holds 06-10; ``workbench.teaching.exercises`` runs them).

A check returns a sentence when the answer is right and raises ``NotYet(hint)`` when it is wrong.
Code that runs the learner's answer sits inside ``running_your_answer(...)``: its failures are a
verdict on the answer. Anything else that raises is the check's own bug, and ``exercises.check``
reports it as a checker error, never as a hint.
"""

from __future__ import annotations

import contextlib
import functools
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
    graph_dims = list(result.summary.inputs[0].dims or ())
    require(all(isinstance(graph_dims[i], str) for i in (0, 2, 3)),
            f"the exported graph still has fixed sizes: pixel_values is {graph_dims}.")
    require(graph_dims[2] != graph_dims[3],
            f"in the graph height and width share one symbol ({graph_dims[2]!r}): the export only runs on squares.")
    probes = wb.probe_shapes(case.model, result.out, case.example_inputs, spec=answer, sizes=sizes)
    require(bool(probes), f"the export does not run at other sizes: {probes!r}")
    with running_your_answer("running your export on non-square images"):
        wide = wb.compare(case.model, result.out, [case.make_inputs(batch=2, seed=5)[0][:, :, :40, :]])
    require(bool(wide), f"the export does not match PyTorch on a non-square image: {wide!r}")
    dims = result.summary.inputs[0].shape_text
    return f"pixel_values is {dims} in the graph, and it matched PyTorch at {[c.label for c in probes.cases]} and a non-square image."


# ---------------------------------------------------------------- 02 inspect


def _largest_activation(onnx_model: Any, batch: int, seq: int) -> tuple[str, int]:
    """The value (not an initializer) with the most elements at ``input_ids (batch, seq)``."""
    import math

    import onnx

    graph = onnx.load(str(onnx_model), load_external_data=False).graph
    computed = {i.name for i in graph.input}  # values that depend on the input, not only on weights
    for node in graph.node:
        if computed.intersection(node.input):
            computed.update(node.output)
    shapes = wb.infer_shapes(onnx_model, {"input_ids": (batch, seq)})
    sized = {n: math.prod(s) for n, s in shapes.items() if n in computed and s and all(d is not None for d in s)}
    name = max(sized, key=lambda n: sized[n])
    return name, sized[name]


def solution_02() -> dict[str, Any]:
    case = wb.zoo.get("text_classifier", smoke=tutorial.SMOKE)
    spec = case.spec.replace(exporter="torchscript", opset=17, external_data=True)
    out = wb.export(case.model, case.example_inputs, _folder() / "ex02_external.onnx", spec=spec).out
    return {"onnx_model": out, "largest": _largest_activation(out, 3, 20)[1]}


def check_02(answer: Any) -> str:
    require(isinstance(answer, dict) and {"onnx_model", "largest"} <= set(answer),
            "answer with a dict: {'onnx_model': <path of your export>, 'largest': <int>}.")
    path = Path(str(answer["onnx_model"]))
    require(path.suffix == ".onnx" and path.is_file(), f"{path} is not an .onnx file: export the model first.")
    with running_your_answer("reading your export"):
        summary = wb.summarize(path)
    require(bool(summary.external_data),
            "the weights are inside the .onnx file: export with ExportSpec(external_data=True).")
    require(summary.parameter_count == _text_classifier()[1].summary.parameter_count,
            "export the notebook's text classifier (case.model), with its weights in external data.")
    case = _text_classifier()[0]
    with running_your_answer("running your export"):
        runs = wb.compare(case.model, path, case.example_inputs)
    require(bool(runs), f"your export does not match PyTorch: {runs!r}")
    name, size = _largest_activation(path, 3, 20)
    require(isinstance(answer["largest"], int) and answer["largest"] == size,
            "run wb.infer_shapes on your export at input_ids (3, 20) and multiply out each computed value's shape "
            "(only values computed from input_ids: initializers and what is made from them alone are weights); "
            "answer the largest.")
    return (f"weights in {', '.join(summary.external_data)}; the largest activation at (3, 20) is {name!r} "
            f"with {size:,} elements.")


# ---------------------------------------------------------------- 03 validate


def _bert_probe(sizes: list[dict[str, int]]) -> Any:
    case, result = _exported("bert_like")
    return wb.probe_shapes(case.model, result.out, case.example_inputs, spec=case.spec, sizes=sizes)


def solution_03() -> dict[str, Any]:
    sizes = [{"batch": 1, "seq": 1}, {"batch": 1, "seq": 512}, {"batch": 3, "seq": 512}, {"batch": 5, "seq": 1}]
    cases = _bert_probe(sizes).cases
    worst = max(cases, key=lambda c: c.max_abs or 0.0)
    return {"sizes": sizes, "worst": dict(worst.sizes)}


def check_03(answer: Any) -> str:
    require(isinstance(answer, dict) and {"sizes", "worst"} <= set(answer),
            "answer with a dict: {'sizes': [{'batch': 1, 'seq': 1}, ...], 'worst': <one of your sizes>}.")
    sizes = answer["sizes"]
    require(isinstance(sizes, (list, tuple)) and bool(sizes) and all(isinstance(s, dict) for s in sizes),
            "'sizes' is a list of size dicts, e.g. [{'batch': 1, 'seq': 1}, ...].")
    require(all(set(s) == {"batch", "seq"} and all(isinstance(v, int) and v >= 1 for v in s.values()) for s in sizes),
            "each dict sets both axes, 'batch' and 'seq', to ints >= 1.")
    case, _ = _exported("bert_like")
    longest = case.model.position_embeddings.num_embeddings
    require(any(s["batch"] == 1 for s in sizes), "include batch 1: exporters treat size 1 specially.")
    require(any(s["seq"] == 1 for s in sizes), "include the shortest sequence, a single token.")
    require(all(s["seq"] <= longest for s in sizes),
            f"no sequence can be longer than the position table ({longest} rows): PyTorch itself fails there.")
    require(any(s["seq"] == longest for s in sizes),
            "include the longest sequence the model accepts: the size of its position-embedding table.")
    probes = _bert_probe(list(sizes))
    require(bool(probes), f"some of these sizes fail: {probes!r}")
    require(answer["worst"] in [dict(s) for s in sizes], "'worst' is one of your sizes, as a dict.")
    top = max(c.max_abs or 0.0 for c in probes.cases)
    mine = next(c for c in probes.cases if c.sizes == answer["worst"])
    require((mine.max_abs or 0.0) >= 0.99 * top,
            f"probe your sizes and read max_abs: at {answer['worst']} it is {mine.max_abs:.3g}, another size reaches {top:.3g}.")
    return (f"all {len(probes.cases)} edge cases match PyTorch (longest sequence: {longest}); the largest "
            f"difference, {top:.3g}, is at {mine.label}.")


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
    require(len(answer.disabled_optimizers) == 1,
            f"disable only the optimizer that drifts, one name (got {list(answer.disabled_optimizers)}); "
            "the bisection names it.")
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
