"""Exercise checks 06-10 and their reference answers (01-05 and the helpers are in ``checks``)."""

from __future__ import annotations

import functools
from typing import Any

import torch

import workbench as wb
from workbench.teaching.checks import _folder, _text_classifier, require, running_your_answer
from workbench.zoo import broken, custom_ops


# ---------------------------------------------------------------- 06 threads


def usable_cpus() -> int:
    """The CPUs this process may run on (affinity), not ``os.cpu_count()``."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _fewest_near_best(p50_ms: dict[int, float]) -> int:
    best = min(p50_ms.values())
    return min(n for n, v in p50_ms.items() if v <= 1.1 * best)


def solution_06() -> dict[str, Any]:
    case, result = _text_classifier()
    cpus = usable_cpus()
    counts = sorted({min(n, cpus) for n in (1, 2, 4, cpus)})
    p50_ms = {n: wb.benchmark(wb.open_session(result.out, wb.SessionConfig(intra_op_threads=n)), case.example_inputs,
                              runs=10, warmup=2).median * 1e3 for n in counts}
    return {"intra_op_threads": _fewest_near_best(p50_ms), "p50_ms": p50_ms}


def check_06(answer: Any) -> str:
    require(isinstance(answer, dict) and {"intra_op_threads", "p50_ms"} <= set(answer),
            "answer with a dict: {'intra_op_threads': <int>, 'p50_ms': {threads: median ms, ...}}.")
    chosen, p50 = answer["intra_op_threads"], answer["p50_ms"]
    require(isinstance(p50, dict) and all(isinstance(k, int) and k >= 1 for k in p50)
            and all(isinstance(v, (int, float)) and v > 0 for v in p50.values()),
            "'p50_ms' maps thread counts (ints >= 1) to the median latency you measured (ms > 0).")
    cpus = usable_cpus()
    require(len(p50) >= min(3, cpus) and 1 in p50,
            "measure at least three thread counts (every count up to your CPUs if you have fewer), 1 among them.")
    require(all(k <= cpus for k in p50),
            f"this process may run on {cpus} CPUs (os.sched_getaffinity), more threads only compete with each other.")
    require(isinstance(chosen, int) and chosen in p50, "choose one of the thread counts you measured.")
    fewest = _fewest_near_best(p50)
    require(chosen == fewest,
            f"by your own numbers {fewest} thread(s) run within 10% of the fastest ({min(p50.values()):.3g} ms): "
            "choose the fewest threads that do, and leave the other cores to the rest of the machine.")
    return f"{chosen} intra-op thread(s): {p50[chosen]:.3g} ms against the fastest {min(p50.values()):.3g} ms on {cpus} CPUs."


# ---------------------------------------------------------------- 07 benchmark


def _flops() -> int | None:
    return wb.graph_flops(_text_classifier()[1].out, {"input_ids": (4, 32)})


def solution_07() -> int:
    model, batch, seq = _text_classifier()[0].model, 4, 32
    layer = model.encoder.layers[0]
    d, ff, tokens = layer.linear1.in_features, layer.linear1.out_features, batch * seq
    per_layer = 2 * tokens * d * (3 * d + d + 2 * ff) + 2 * 2 * batch * seq * seq * d
    return len(model.encoder.layers) * per_layer + 2 * batch * d * model.classifier.out_features


def check_07(answer: Any) -> str:
    require(isinstance(answer, int) and not isinstance(answer, bool), "answer with an int: FLOPs of one run.")
    truth = _flops()
    require(truth is not None, "the graph's FLOPs could not be counted here.")
    ratio = answer / truth
    require(abs(ratio - 0.5) > 0.05, "that is half the count: a multiply-add is two floating-point operations.")
    require(abs(ratio - 1) <= 0.05,
            f"your estimate is {ratio:.2f}x the graph's count. Per layer: the Q/K/V and output projections, the two "
            "attention products (b*s*s*d each) and the two feed-forward Linears; 2*M*N*K per matrix product.")
    return f"your {answer:,} is within {abs(ratio - 1):.1%} of the graph's {truth:,} FLOPs at batch 4 x seq 32."


# ---------------------------------------------------------------- 08 custom ops


def _my_scaled_tanh(x: Any, scale: float) -> Any:
    from onnxscript import opset18 as op

    return op.Mul(op.CastLike(scale, x), op.Tanh(x))


def solution_08() -> dict[Any, Any]:
    return {custom_ops.library_op(): _my_scaled_tanh}


def check_08(answer: Any) -> str:
    require(isinstance(answer, dict) and len(answer) == 1,
            "answer with a dict of one entry: {the PyTorch op overload: your onnxscript translation}.")
    key, fn = next(iter(answer.items()))
    require(key is custom_ops.library_op(),
            "the key is the op's overload, torch.ops.wbtutorial.scaled_tanh.default (custom_ops.library_op()).")
    require(callable(fn), "the value is your translation function: def scaled_tanh(x, scale: float): ...")
    require(fn is not custom_ops.scaled_tanh_onnx,
            "that is the notebook's translation; write your own function with onnxscript's op.Tanh, op.Mul, ...")
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


def solution_09() -> dict[str, Any]:
    return {"module": _drift_module(), "cause": "export"}


def check_09(answer: Any) -> str:
    require(isinstance(answer, dict) and {"module", "cause"} <= set(answer),
            "answer with a dict: {'module': 'b1.lin', 'cause': 'export' or 'optimization'}.")
    require(isinstance(answer["module"], str), "'module' is the module's dotted path as a string, e.g. 'b1.lin'.")
    truth = _drift_module()
    require(answer["module"] == truth, "look at the diagnosis' divergence: its first divergent node belongs to a module.")
    require(answer["cause"] in ("export", "optimization"), "'cause' is 'export' or 'optimization'.")
    require(answer["cause"] == "export",
            "the layer-wise comparison runs the graph with ONNX Runtime's optimizations off, and it already "
            "diverges: the exported graph computes something else, no optimizer did it.")
    return f"the graph first leaves PyTorch inside {truth!r}, and the export itself wrote the difference."


# ---------------------------------------------------------------- 10 IO binding


def _logits(inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.from_numpy(wb.open_session(_text_classifier()[1].out).run(None, {"input_ids": inputs[0].numpy()})[0])


def solution_10() -> dict[str, Any]:
    case, result = _text_classifier()
    binder = wb.bound_session(result.out, case.make_inputs(batch=4, seq=32))
    binder.update_inputs(case.make_inputs(batch=4, seq=32, seed=1))
    updated = binder.run()["logits"].clone()
    binder.bind_inputs(case.make_inputs(batch=2, seq=16, seed=2))
    binder.allocate_outputs()
    binder.run()
    return {"binder": binder, "updated": updated}


def check_10(answer: Any) -> str:
    require(isinstance(answer, dict) and {"binder", "updated"} <= set(answer),
            "answer with a dict: {'binder': your IOBinder, 'updated': the logits of the run after update_inputs}.")
    binder, updated = answer["binder"], answer["updated"]
    require(isinstance(binder, wb.IOBinder), "'binder' is what wb.bound_session(result.out, inputs) returned.")
    require(isinstance(updated, torch.Tensor) and tuple(updated.shape) == (4, 10),
            "'updated' is the (4, 10) logits tensor of the run after update_inputs (clone it before rebinding).")
    case = _text_classifier()[0]
    require(bool(torch.allclose(updated, _logits(case.make_inputs(batch=4, seq=32, seed=1)), rtol=1e-4, atol=1e-5)),
            "'updated' should be the logits for case.make_inputs(batch=4, seq=32, seed=1), copied into the bound "
            "buffer with binder.update_inputs(...) and run.")
    bound = binder.inputs.get("input_ids")
    new = case.make_inputs(batch=2, seq=16, seed=2)[0]
    require(bound is not None and tuple(bound.shape) == (2, 16) and bool(torch.equal(torch.as_tensor(bound), new)),
            "then bind the new shape: binder.bind_inputs(case.make_inputs(batch=2, seq=16, seed=2)).")
    out = binder.outputs.get("logits")
    require(out is not None and tuple(out.shape) == (2, 10),
            "the bound output still has the old shape: call binder.allocate_outputs() after binding new inputs.")
    require(binder.runs >= 2 and bool(torch.allclose(torch.as_tensor(out), _logits((new,)), rtol=1e-4, atol=1e-5)),
            "run the binder again after binding the new shape: its output buffer does not hold the new logits.")
    return f"updated in place, then rebound to (2, 16): {binder.runs} runs, the output buffer holds the new logits."
