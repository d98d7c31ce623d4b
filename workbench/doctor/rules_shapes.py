"""Rules for dynamic axes that are not: read the shape probes and the graph's declared dims."""

from __future__ import annotations

import re
from typing import Any

from workbench.core.feeds import build_feed
from workbench.core.inputs import resize_inputs
from workbench.core.probe import ProbeCase, ProbeReport
from workbench.doctor.context import Context, at_least_two, other_exporter_retry, other_exporter_spec
from workbench.doctor.divergence import layerwise
from workbench.doctor.attempt import eval_mode
from workbench.doctor.findings import Finding, Retry
from workbench.doctor.guards import specialization_site
from workbench.doctor.rules_run import node_place
from workbench.errors import brief

_NODE = re.compile(r"(?:node with name|Name:)\s*'([^']*)'")
_REQUESTED = re.compile(r"requested shape:\s*\{([\d, -]+)\}")


def _others(report: ProbeReport, symbol: str) -> list[ProbeCase]:
    """Cases where only ``symbol`` differs from the example."""
    ex = report.example
    return [c for c in report.cases if c.sizes.get(symbol) != ex.get(symbol)
            and all(c.sizes.get(s) == ex.get(s) for s in report.symbols if s != symbol)]


def _sizes_text(cases: list[ProbeCase]) -> str:
    return ", ".join(c.label for c in cases[:6]) + (" ..." if len(cases) > 6 else "")


def _without_axis(ctx: Context, name: str, dim: int) -> Retry:
    spec = ctx.spec
    assert spec is not None
    axes = {n: {d: s for d, s in a.items() if not (n == name and d == dim)} for n, a in spec.dynamic_axes.items()}
    axes = {n: a for n, a in axes.items() if a}
    action = f"re-export without the dynamic axis {name}[{dim}]"
    return Retry(action, {"dynamic_axes": axes}, settings=[(action, ctx.setting.replace(spec=spec.replace(dynamic_axes=axes)))])


def _declared(ctx: Context, report: ProbeReport) -> tuple[list[Finding], set[str]]:
    spec = ctx.spec
    assert spec is not None
    out: list[Finding] = []
    explained: set[str] = set()
    for name, dims in report.static_in_graph.items():
        for dim in dims:
            sym = spec.dynamic_axes[name][dim]
            size = report.example.get(sym)
            explained.add(sym)
            others = _others(report, sym)
            failing = [c for c in others if c.status in ("ort_failed", "mismatch")]
            torch_only = [c for c in others if c.status == "torch_failed"]
            evidence: dict[str, Any] = {"input": name, "axis": dim, "symbol": sym, "example_size": size,
                                        "graph_dim": size, "exporter": ctx.setting.exporter}
            if failing:
                evidence["failing_sizes"] = _sizes_text(failing)
                evidence["probe_message"] = brief(failing[0].message, 200)
            if size is not None and size <= 1:
                resized = at_least_two(ctx.setting, spec)
                action = f"re-export from an example with {sym!r} = 2"
                out.append(Finding(
                    "DYN001", f"The size-{size} example axis {sym!r} was specialized",
                    f"{name}[{dim}] ({sym!r}) is {size} in the example; the {ctx.setting.exporter} exporter treats "
                    f"sizes 0 and 1 as constants, so the graph declares {name}[{dim}] = {size} and rejects other sizes.",
                    evidence,
                    f"Export from an example with {sym!r} >= 2, e.g. example = make_inputs(batch=2).",
                    Retry(action, {"example_sizes": {sym: 2}},
                          settings=[(action, ctx.setting.replace(example_inputs=resized))])))
            elif torch_only and not failing:
                out.append(Finding(
                    "DYN004", f"The axis {sym!r} is declared dynamic but the model fixes it",
                    f"PyTorch itself only accepts {name}[{dim}] = {size} (other sizes fail in the model: "
                    f"{brief(torch_only[0].message, 120)}); the exporter kept it static. Declaring it dynamic is meaningless.",
                    evidence, "Drop that axis from dynamic_axes.", _without_axis(ctx, name, dim), severity="warning"))
            else:
                out.append(_specialized(ctx, name, dim, sym, size, evidence))
    return out, explained


def _specialized(ctx: Context, name: str, dim: int, sym: str, size: Any, evidence: dict[str, Any]) -> Finding:
    """DYN004 for an axis the dynamo exporter made static: where the model's code pinned it (the guard
    torch.export recorded), retried with the other exporter and then without that axis."""
    site = None
    if ctx.setting.exporter == "dynamo" and isinstance(size, int) and ctx.spec is not None:
        with eval_mode(ctx.model, ctx.setting.eval_mode):
            site = specialization_site(ctx.model, ctx.setting.example_inputs, ctx.spec, size)
    where = ""
    if site is not None:
        frame, guard = site
        evidence.update({"location": frame.location, "source": frame.source, "function": frame.function,
                         "guard": guard})
        where = f" at {frame.location} ({frame.function}): {frame.source}"
    # A size the model's Python code turns into an int (the guard) is baked by TorchScript's tracer just the
    # same, so the other exporter is only worth trying when no such line was found.
    retry = _without_axis(ctx, name, dim) if site is not None else other_exporter_retry(ctx)
    if site is None:
        retry.settings.extend(_without_axis(ctx, name, dim).settings)
    return Finding(
        "DYN004", f"The exporter fixed the dynamic axis {sym!r}",
        f"The graph declares {name}[{dim}] = {size} although PyTorch runs at other sizes: the model's "
        f"code specialized that size during export (torch.export: \"Constraints violated ... specialized it to be a "
        f"constant\"; torch.onnx then made the axis static){where or ' (a size used as a Python int)'}.",
        evidence, "Keep the size symbolic at that line (x.shape[i] flowing into tensor ops, no Python int "
        "arithmetic or comparison on it), or use the other exporter, or drop the axis from dynamic_axes.", retry)


def _fixed_by_model(ctx: Context, report: ProbeReport, explained: set[str]) -> list[Finding]:
    spec = ctx.spec
    assert spec is not None
    out = []
    for sym in report.symbols:
        others = _others(report, sym)
        if sym in explained or not others or not all(c.status == "torch_failed" for c in others):
            continue
        explained.add(sym)
        name, dim = next((n, d) for n in spec.input_names for d, s in spec.dynamic_axes.get(n, {}).items() if s == sym)
        out.append(Finding(
            "DYN004", f"The axis {sym!r} is declared dynamic but the model fixes it",
            f"PyTorch itself fails at every other size of {name}[{dim}] ({brief(others[0].message, 120)}): the model "
            f"only works at {report.example.get(sym)}. Declaring it dynamic is meaningless.",
            {"input": name, "axis": dim, "symbol": sym, "example_size": report.example.get(sym),
             "failing_sizes": _sizes_text(others)},
            "Drop that axis from dynamic_axes.", _without_axis(ctx, name, dim), severity="warning"))
    return out


def _full_message(ctx: Context, case: ProbeCase) -> str:
    """The whole ONNX Runtime message at a failing probe (the probe report keeps a shortened one)."""
    spec, session = ctx.spec, ctx.attempt.session
    if spec is None or session is None:
        return case.message
    inputs = resize_inputs(ctx.setting.example_inputs, spec.input_names, spec.dynamic_axes, case.sizes, seed=1)
    try:
        session.run(None, build_feed(session, list(inputs)))
    except Exception as exc:
        return " ".join(str(exc).split())
    return case.message


def _baked(ctx: Context, report: ProbeReport, cases: list[ProbeCase]) -> Finding:
    first = next((c for c in cases if _NODE.search(c.message)), cases[0])
    message = _full_message(ctx, first)
    node = next((m.group(1) for m in [_NODE.search(message), _NODE.search(first.message)] if m), None)
    evidence: dict[str, Any] = {**(node_place(ctx, node) if node else {}), "failing_sizes": _sizes_text(cases),
                                "example_sizes": dict(report.example), "probe_message": brief(message, 400),
                                "exporter": ctx.setting.exporter}
    requested = _REQUESTED.search(message)
    baked = []
    if requested:
        numbers = [int(x) for x in requested.group(1).replace(" ", "").split(",") if x.lstrip("-").isdigit()]
        evidence["requested_shape"] = numbers
        baked = [s for s in report.symbols if report.example.get(s) in numbers and first.sizes.get(s) != report.example.get(s)]
        if baked:
            evidence["baked"] = {s: report.example[s] for s in baked}
    what = (f"holds the example's {', '.join(f'{s}={report.example[s]}' for s in baked)}" if baked
            else "holds sizes from the example")
    where = f"node {evidence.get('node')!r} ({evidence.get('op_type', '?')}) in module {evidence.get('module')!r}" \
        if node else "a node"
    settings = []
    spec = ctx.spec
    if spec is not None and at_least_two(ctx.setting, spec) is not ctx.setting.example_inputs:
        same = f"re-export from an example with dynamic axes >= 2 ({spec.exporter})"
        settings.append((same, ctx.setting.replace(example_inputs=at_least_two(ctx.setting, spec))))
    other = other_exporter_retry(ctx)
    settings += other.settings
    action = " then ".join(label for label, _ in settings)
    return Finding(
        "DYN002", "A shape was baked into the graph by tracing",
        f"The graph declares {report.symbols} dynamic, but {where} {what}: tracing recorded the size as a constant, "
        "so other sizes fail.", evidence,
        f"Export with the {other_exporter_spec(spec).exporter} exporter, which keeps shapes symbolic; or compute the "
        "shape from x.shape in tensor ops instead of Python ints.",
        Retry(action, {"exporter": other_exporter_spec(spec).exporter}, settings=settings))


def _shape_branch(ctx: Context, report: ProbeReport, cases: list[ProbeCase]) -> Finding:
    matching = [c for c in report.cases if c.status == "match"]
    evidence: dict[str, Any] = {"mismatch_sizes": _sizes_text(cases), "match_sizes": _sizes_text(matching),
                                "example_sizes": dict(report.example), "max_abs": max(c.max_abs or 0 for c in cases),
                                "exporter": ctx.setting.exporter}
    spec = ctx.spec
    if ctx.deep and spec is not None and ctx.attempt.out is not None:
        inputs = resize_inputs(ctx.setting.example_inputs, spec.input_names, spec.dynamic_axes, cases[0].sizes, seed=1)
        try:
            ctx.divergence = layerwise(ctx.model, ctx.attempt.out, inputs, tolerance=ctx.setting.tolerance,
                                       inputs_label=f"probe {cases[0].label}")
        except Exception:
            ctx.divergence = None
        if ctx.divergence is not None and ctx.divergence.first is not None:
            f = ctx.divergence.first
            evidence.update({"node": f.node, "op_type": f.op_type, "module": f.module, "module_type": f.module_type})
    where = f" (first divergent node {evidence['node']!r} in module {evidence['module']!r})" if "node" in evidence else ""
    return Finding(
        "DYN005", "Shape-dependent control flow was frozen at export",
        f"The graph runs at every probed size but computes something else at {_sizes_text(cases)}{where}: a Python "
        "branch on a size took one side for the example and the graph kept only that side.",
        evidence,
        "Make the code independent of the size, or use torch.cond(pred, true_fn, false_fn, (x,)); if deployment "
        "only uses one side of the branch, export from a size on that side and check inputs stay there.")


def probe_findings(ctx: Context) -> list[Finding]:
    """DYN001, DYN002, DYN004, DYN005, DYN006 from the shape probes."""
    att = ctx.attempt
    err = att.error("probe")
    if err is not None:
        return [Finding("DYN006", "The shape probes could not run", brief(err),
                        {"signature": brief(err)}, "Read the signature.", other_exporter_retry(ctx))]
    report = att.probe
    if report is None or ctx.spec is None:
        return []
    out, explained = _declared(ctx, report)
    out += _fixed_by_model(ctx, report, explained)
    remaining = [c for c in report.failures if all(c.sizes.get(s) == report.example.get(s) for s in explained)]
    if not remaining:
        return out
    failed = [c for c in remaining if c.status == "ort_failed"]
    if failed and any(_NODE.search(c.message) for c in failed):
        return out + [_baked(ctx, report, failed)]
    if not failed:
        # A mismatch at the example's own sizes (new values), or with values already failing, is
        # about values, not sizes: the data-dependent rules report it.
        at_example = any(all(c.sizes.get(s) == report.example.get(s) for s in report.symbols) for c in remaining)
        if at_example or att.stages["values"] is False or att.stages["compare"] is False:
            return out
        return out + [_shape_branch(ctx, report, remaining)]
    return out + [Finding(
        "DYN006", "The graph fails at other sizes of its dynamic axes",
        f"ONNX Runtime fails at {_sizes_text(failed)}: {brief(failed[0].message, 200)}",
        {"failing_sizes": _sizes_text(failed), "probe_message": brief(failed[0].message, 300),
         "example_sizes": dict(report.example)},
        "Read the probe messages; try the other exporter.", other_exporter_retry(ctx))]
