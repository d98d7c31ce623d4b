"""Rules for an exported model that fails later: checker, session, comparisons, placement."""

from __future__ import annotations

import re
from typing import Any

import onnx
import torch

from workbench.core.capture import captured_output
from workbench.core.compare import Comparison, OutputDiff, compare_arrays
from workbench.core.feeds import build_feed, run_torch
from workbench.core.placement import Placement, placement
from workbench.core.session import open_session
from workbench.core.tolerance import TOLERANCES
from workbench.doctor.attempt import eval_mode, fastpath
from workbench.doctor.bisect import bisect_optimizations
from workbench.doctor.context import Context, other_exporter_retry
from workbench.doctor.divergence import Divergence, layerwise, value_scopes
from workbench.doctor.findings import Finding, Retry
from workbench.errors import brief

_NODE_NAME = re.compile(r"(?:node with name|Name:)\s*'([^']*)'")
_RUNNING = re.compile(r"running (\w+) node")
_NOT_REGISTERED = re.compile(r"([\w.]+):(\w+)\((-?\d+)\) is not a registered function/op")
_FP16 = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def node_place(ctx: Context, node: str | None = None, op: tuple[str, str] | None = None) -> dict[str, Any]:
    """``node``, ``op_type`` and ``module`` of a node found by name or by (domain, op_type)."""
    out = ctx.attempt.out
    if out is None:
        return {"node": node} if node else {}
    proto = onnx.load(str(out), load_external_data=False)
    scopes = {n: (m, t) for m, t, n in value_scopes(proto).values()}
    for i, n in enumerate(proto.graph.node):
        name = n.name or f"{n.op_type}_{i}"
        if (node is not None and name == node) or (op is not None and (n.domain, n.op_type) == op):
            module, module_type = scopes.get(name, (None, ""))
            out = {"node": name, "op_type": n.op_type if not n.domain else f"{n.domain}::{n.op_type}"}
            if module is not None:
                out["module"] = module
                if module_type:
                    out["module_type"] = module_type
            return out
    return {"node": node} if node else {}


def _divergence_evidence(div: Divergence | None) -> dict[str, Any]:
    if div is None or div.first is None:
        return {}
    f = div.first
    return {"node": f.node, "op_type": f.op_type, "module": f.module, "module_type": f.module_type,
            "node_max_abs": f.max_abs, "graph": div.graph}


def _worst(diff: OutputDiff) -> dict[str, Any]:
    out: dict[str, Any] = {"output": diff.name, "max_abs": diff.max_abs, "max_rel": diff.max_rel,
                           "mismatches": f"{diff.mismatches}/{diff.total}"}
    if diff.shape_mismatch:
        out["shapes"] = diff.shape_mismatch
    elif diff.mismatches:
        out["values"] = f"at {diff.worst_index}: PyTorch {diff.worst_expected:.6g}, ONNX Runtime {diff.worst_actual:.6g}"
    return out


def checker_findings(ctx: Context) -> list[Finding]:
    """CHK001: the summarize stage's ONNX checker rejects the exported graph (or cannot read it)."""
    summary = ctx.attempt.summary
    if ctx.attempt.stages["summarize"] is not False:
        return []
    message = brief(summary.checker_message if summary else ctx.attempt.error("summarize"))
    return [Finding("CHK001", "The ONNX checker rejects the model", f"onnx.checker: {message}",
                    {"signature": message, "onnx_model": str(ctx.attempt.out)},
                    "Try the other exporter or another opset; report the exporter bug with the model.",
                    other_exporter_retry(ctx))]


def session_findings(ctx: Context) -> list[Finding]:
    """OP004 (a custom-domain op without a kernel) or ORT001 when the session cannot be built."""
    err = ctx.attempt.error("session")
    if err is None or ctx.has("EP001", "EP002"):
        return []
    text = " ".join(str(err).split())
    base = {"signature": brief(err), "stage": "session", **ctx.attempt.printed_evidence("export", "session")}
    m = _NOT_REGISTERED.search(text)
    if m:
        domain, op = m.group(1), m.group(2)
        return [Finding(
            "OP004", f"{domain}::{op} has no ONNX Runtime kernel",
            f"The graph holds {domain}::{op}, a custom-domain op that ONNX Runtime does not implement; the session "
            "cannot be built.", {**base, "op": f"{domain}::{op}", **node_place(ctx, op=(domain, op))},
            "Register the kernel: so.register_custom_ops_library('libmyops.so'), or export a decomposition into "
            "standard ONNX ops (change the symbolic / translation).",
            other_exporter_retry(ctx))]
    node = _NODE_NAME.search(text)
    return [Finding("ORT001", "ONNX Runtime cannot build a session for the model", brief(err, 400),
                    {**base, **(node_place(ctx, node.group(1)) if node else {})},
                    "Read the signature; try another opset or the other exporter.", other_exporter_retry(ctx))]


def _uses_fp16(ctx: Context) -> bool:
    if any(p.dtype in (torch.float16, torch.bfloat16) for p in ctx.model.parameters()):
        return True
    if any(t.dtype in (torch.float16, torch.bfloat16) for t in ctx.setting.example_inputs):
        return True
    proto = onnx.load(str(ctx.attempt.out), load_external_data=False)
    if any(i.data_type in _FP16 for i in proto.graph.initializer):
        return True
    return any(n.op_type == "Cast" and any(a.name == "to" and a.i in _FP16 for a in n.attribute) for n in proto.graph.node)


def _run_failure(ctx: Context, err: BaseException) -> Finding:
    text = " ".join(str(err).split())
    node = _NODE_NAME.search(text)
    return Finding("ORT001", "ONNX Runtime fails on the example", brief(err, 400),
                   {"signature": brief(err), "stage": "compare", **(node_place(ctx, node.group(1)) if node else {})},
                   "Read the signature; try another opset or the other exporter.", other_exporter_retry(ctx))


def _fp16_finding(ctx: Context, cmp: Comparison, worst: dict[str, Any]) -> Finding | None:
    """NUM002: the model computes in half precision and every output matches at the fp16 tolerance."""
    if cmp.rtol >= TOLERANCES["fp16"][0] or not _uses_fp16(ctx):
        return None
    rtol, atol = TOLERANCES["fp16"]
    if not all(OutputDiff.from_arrays(o.name, o.expected, o.actual, rtol, atol).ok for o in cmp.outputs):
        return None
    action = "compare at the fp16 tolerance"
    return Finding(
        "NUM002", "Half precision compared at fp32 tolerance",
        f"The model computes in float16, whose rounding (about 1e-3 relative) exceeds the {cmp.tolerance} "
        "tolerance; at the fp16 tolerance every output matches.",
        {**worst, "tolerance": cmp.tolerance, "passes_at": "fp16"},
        "wb.compare(model, onnx_model, inputs, tolerance='fp16')  # or wb.diagnose(..., tolerance='fp16')",
        Retry(action, {"tolerance": "fp16"}, settings=[(action, ctx.setting.replace(tolerance="fp16"))]))


def _drifts_from_optimization(ctx: Context, cmp: Comparison) -> bool:
    """Whether the unoptimized graph matches PyTorch (so an optimization moves the outputs); with
    ``ctx.deep`` the bisection finds the level and the optimizer."""
    att, setting = ctx.attempt, ctx.setting
    config = setting.config
    if config.opt_level == "disable" or att.out is None or att.session is None:
        return False
    inputs = [build_feed(att.session, list(setting.example_inputs))]
    expected = [[o.expected for o in cmp.outputs]]
    if ctx.deep:
        ctx.bisection = bisect_optimizations(att.out, inputs, expected, ctx.work_dir, tolerance=setting.tolerance,
                                             config=config)
        return ctx.bisection.drift_from_optimization
    with captured_output():  # ONNX Runtime's own log; the verdict is what counts here
        plain = open_session(att.out, config.replace(opt_level="disable"))
        actual = plain.run(None, inputs[0])
    return compare_arrays(expected[0], actual, tolerance=setting.tolerance).ok


def compare_findings(ctx: Context) -> list[Finding]:
    """NUM002 (fp16 at fp32 tolerance), NUM005 (PyTorch's fast path), NUM003 (an ORT optimizer),
    NUM004 (the graph itself), ORT001 (running fails)."""
    att = ctx.attempt
    if att.stages["compare"] is not False:
        return []
    err = att.error("compare")
    if err is not None:
        return [_run_failure(ctx, err)]
    cmp = att.comparison
    assert cmp is not None and att.session is not None
    worst = _worst(cmp.failures[0])
    found = _fp16_finding(ctx, cmp, worst) or _fastpath_finding(ctx, cmp, worst)
    if found is not None:
        return [found]
    if _drifts_from_optimization(ctx, cmp):
        return [_optimizer_finding(ctx, worst)]
    if ctx.deep:
        ctx.divergence = layerwise(ctx.model, att.out, ctx.setting.example_inputs, tolerance=ctx.setting.tolerance,
                                   graph_label="exported graph, unoptimized")
    place = _divergence_evidence(ctx.divergence)
    where = f" The first divergent node is {place['node']!r} in module {place['module']!r}." if place else ""
    return [Finding(
        "NUM004", "The ONNX graph diverges from PyTorch",
        f"Even with ONNX Runtime's optimizations off, outputs differ beyond {cmp.tolerance}.{where}",
        {**worst, **place},
        "Check how that module is translated (its symbolic, custom_translation_table entry or decomposition) "
        "against its PyTorch forward; compare layer by layer with wb.doctor.layerwise(model, onnx_model, inputs).",
        other_exporter_retry(ctx))]


_FAST_PATH_MODULES = (torch.nn.TransformerEncoder, torch.nn.TransformerEncoderLayer, torch.nn.MultiheadAttention)


def _fastpath_finding(ctx: Context, cmp: Comparison, worst: dict[str, Any]) -> Finding | None:
    """NUM005: PyTorch's transformer fast path (nested tensors) disagrees; its regular path matches ORT."""
    modules = [(n, type(m).__name__) for n, m in ctx.model.named_modules() if isinstance(m, _FAST_PATH_MODULES)]
    if not modules or not ctx.setting.fastpath or not torch.backends.mha.get_fastpath_enabled():
        return None
    with eval_mode(ctx.model, ctx.setting.eval_mode), fastpath(False):
        regular = run_torch(ctx.model, ctx.setting.example_inputs)
    if not compare_arrays(regular, [o.actual for o in cmp.outputs], tolerance=ctx.setting.tolerance).ok:
        return None
    zeros = sum(int(((o.expected == 0) & (o.actual != 0)).sum()) for o in cmp.outputs)
    action = "compare with PyTorch's fast path disabled"
    return Finding(
        "NUM005", "PyTorch's fast path computes something else",
        f"{modules[0][1]} {modules[0][0]!r} runs PyTorch's inference fast path, which returns zeros at padded "
        f"positions ({zeros} values here); the exported graph computes them like PyTorch's regular path, "
        "which ONNX Runtime matches.",
        {**worst, "module": modules[0][0], "module_type": modules[0][1], "zeros_in_pytorch": zeros},
        "torch.backends.mha.set_fastpath_enabled(False)  # when comparing; or ignore padded positions\n"
        "# or build the encoder with enable_nested_tensor=False",
        Retry(action, {"fastpath": False}, settings=[(action, ctx.setting.replace(fastpath=False))]))


def _optimizer_finding(ctx: Context, worst: dict[str, Any]) -> Finding:
    b = ctx.bisection
    config = ctx.setting.config
    evidence = dict(worst)
    if b is None:  # a re-check: no bisection, just the verdict
        return Finding("NUM003", "An ONNX Runtime graph optimization changes the results",
                       "The unoptimized graph matches PyTorch; an optimized one does not.", evidence,
                       "SessionConfig(opt_level='disable') or disable the optimizer that causes it.")
    evidence.update({"level": b.first_bad_level, "optimizer": b.culprit, "fixers": b.fixers,
                     "ops_changed": b.ops_changed})
    if b.optimized_out is not None:
        ctx.divergence = layerwise(ctx.model, b.optimized_out, ctx.setting.example_inputs,
                                   tolerance=ctx.setting.tolerance, scope_source=ctx.attempt.out,
                                   graph_label=f"graph as ONNX Runtime optimizes it at {b.first_bad_level!r}")
        evidence.update(_divergence_evidence(ctx.divergence))
    if b.culprit:
        disabled = tuple(config.disabled_optimizers) + (b.culprit,)
        fixed = config.replace(disabled_optimizers=disabled)
        action = f"run with disabled_optimizers={list(disabled)}"
        fix = f"wb.SessionConfig(opt_level={config.opt_level!r}, disabled_optimizers={disabled!r})"
        cause = (f"The graph matches PyTorch up to level {b.last_good_level!r}; at {b.first_bad_level!r} the "
                 f"{b.culprit} optimizer rewrites it and the outputs move beyond {ctx.setting.tolerance_name}.")
    else:
        fixed = config.replace(opt_level=b.last_good_level or "disable")
        action = f"run at opt_level={fixed.opt_level!r}"
        fix = f"wb.SessionConfig(opt_level={fixed.opt_level!r})"
        cause = (f"The graph matches PyTorch up to level {b.last_good_level!r}; optimizations at "
                 f"{b.first_bad_level!r} move the outputs, and no single optimizer explains it.")
    entries = {k: v for k, v in config.config_entries.items() if "approximation" in k}
    if entries:
        cause += f" The session asks for it: config_entries {entries}."
        fix += f"  # and drop {list(entries)} from config_entries"
    return Finding("NUM003", "An ONNX Runtime graph optimization changes the results", cause, evidence, fix,
                   Retry(action, {"config": fixed.label(), "disabled_optimizers": list(fixed.disabled_optimizers)},
                         settings=[(action, ctx.setting.replace(config=fixed))]))


def values_findings(ctx: Context) -> list[Finding]:
    """The export matches on the example but not on other values: find the value-dependent code."""
    att = ctx.attempt
    if att.stages["values"] is not False or att.value_comparison is None:
        return []
    diff = att.value_comparison.failures[0]
    sample = att.value_samples[diff.sample]
    if ctx.deep and att.out is not None:
        try:
            ctx.divergence = layerwise(ctx.model, att.out, sample, tolerance=ctx.setting.tolerance,
                                       inputs_label=f"inputs with other values (sample {diff.sample})")
        except Exception:  # shapes that differ from PyTorch's may not run; the finding stands without it
            ctx.divergence = None
    place = _divergence_evidence(ctx.divergence)
    warned = [w for w in (att.export.warnings if att.export else []) if "TracerWarning" in w]
    base = {**_worst(diff), "sample": diff.sample, **place}
    if warned:
        base["warning"] = brief(warned[0], 160)
    trace = ctx.trace
    in_fn = trace.escapes_of(in_function=True)
    bools = trace.escapes_of("bool", in_function=False)
    values = trace.escapes_of("item", "int", "float", "index", "tolist", "numpy", in_function=False)
    retry = other_exporter_retry(ctx)
    if in_fn:
        site = in_fn[0]
        return [Finding(
            "OP003", f"Custom autograd Function {site.autograd_function} was traced into constants",
            f"{site.autograd_function}.forward leaves PyTorch (.{site.kind}() at {site.location}); the trace kept its "
            "output for the example as a constant, so other inputs give wrong results.",
            {**base, **site.evidence(), "has_symbolic": site.has_symbolic},
            f"Give {site.autograd_function} a symbolic() (TorchScript exporter) or make it a torch.library custom op "
            "with an onnxscript translation (dynamo exporter).", retry)]
    if bools:
        site = bools[0]
        return [Finding(
            "DATA001", "A branch on tensor values was traced away",
            f"{site.where()} branches on a tensor's value; tracing kept the branch the example took, so inputs that "
            "take the other branch get the wrong result. A comparison on the example alone cannot see it.",
            {**base, **site.evidence()},
            "out = torch.where(cond, branch_true(x), branch_false(x))  # both branches as tensor ops\n"
            "# or torch.cond(cond, branch_true, branch_false, (x,)) with the dynamo exporter", retry)]
    if values:
        site = values[0]
        return [Finding(
            "DATA003", "A tensor value was turned into a Python number",
            f"{site.where()} turns a tensor into a Python value (.{site.kind}()); the trace froze it to the example's "
            "value, used for a shape, a slice or a constant.",
            {**base, **site.evidence(), "escape": site.kind},
            "Keep it a tensor, or export with the dynamo exporter, which records it as a data-dependent size "
            "(add torch._check(...) hints for its range).", retry)]
    return [Finding(
        "DATA004", "The export matches on the example only",
        "PyTorch and ONNX Runtime agree on the example but not on inputs with other values." +
        (f" The first divergent node is {place['node']!r} in module {place['module']!r}." if place else ""),
        base, "Look at that module for value-dependent Python code (branches, .item(), numpy).", retry)]


def memcpy_findings(result: Placement) -> list[Finding]:
    """EP003: nodes on CPU next to a GPU provider, with Memcpy nodes between them."""
    accel = [p for p in result.session_providers if p != "CPUExecutionProvider"]
    cpu_nodes = [n for n in result.on("CPUExecutionProvider") if not n.op_type.startswith("Memcpy")]
    if not accel or not cpu_nodes or not result.memcpy_count:
        return []
    ops = sorted({n.op_type for n in cpu_nodes})
    return [Finding(
        "EP003", "Nodes on CPU next to a GPU provider, with Memcpy",
        f"{len(cpu_nodes)} node(s) ({', '.join(ops)}) have no {accel[0]} kernel and run on CPU; ONNX Runtime "
        f"inserted {result.memcpy_count} Memcpy node(s) to move tensors between devices.",
        {"provider": accel[0], "node": cpu_nodes[0].node, "op_type": cpu_nodes[0].op_type,
         "cpu_nodes": [n.node for n in cpu_nodes[:10]], "memcpy_count": result.memcpy_count,
         "by_provider": dict(result.by_provider)},
        f"Replace {', '.join(ops)} with ops {accel[0]} implements, move that pre/post-processing out of the graph, "
        "or try a newer opset; wb.placement(onnx_model, inputs, config=config) shows where each node runs.",
        severity="warning")]


def placement_findings(ctx: Context) -> list[Finding]:
    att = ctx.attempt
    if not ctx.deep or att.session is None or att.out is None:
        return []
    if all(p == "CPUExecutionProvider" for p in att.providers):
        return []
    return memcpy_findings(placement(att.out, list(ctx.setting.example_inputs), config=ctx.setting.config))
