"""Rules for a failed export: name the cause from the exception chain and the eager trace."""

from __future__ import annotations

import os
import re
from typing import Any, Callable

import torch

from workbench.doctor.context import Context, other_exporter_retry, other_exporter_spec
from workbench.doctor.findings import Finding, Retry
from workbench.doctor.locate import Location, frames_of, locate, return_site
from workbench.doctor.rules_capture import CAPTURE_RULES
from workbench.doctor.rules_outputs import names_finding, non_tensor_finding
from workbench.doctor.trace import CallSite
from workbench.errors import InvalidInputError, NonTensorOutputError, OutputNamesError, SpecError, brief, strip_ansi

_TORCH_DIR = os.path.dirname(torch.__file__)
_CALL = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)')
_DEFINED_AT = re.compile(r"^(\S.*?)\((\d+)\): (\S+)$", re.MULTILINE)
_OPSET = re.compile(r"Exporting the operator '([\w:.]+)' to ONNX opset version (\d+) is not supported\. "
                    r"Support for this operator was added in version (\d+)")
_TS_UNSUPPORTED = re.compile(r"Exporting the operator '([\w:.]+)' to ONNX opset version (\d+) is not supported")
_DYNAMO_UNSUPPORTED = re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)'")
_COULD_NOT_EXPORT = re.compile(r"Couldn't export (?:Python )?operator ([\w:.]+)")
_FX_NODE = re.compile(r"Error when translating node %(\w+)")

Rule = Callable[[Context, str, set, dict], "list[Finding] | None"]


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = getattr(exc, "exception", None) or exc.__cause__ or exc.__context__
    return out


def user_location(text: str) -> tuple[str, str] | None:
    """(file:line, source) of the innermost frame outside torch in a torch.export or TorchScript message."""
    frames = frames_of([], text)
    if frames:
        return frames[-1].location, frames[-1].source
    for m in _DEFINED_AT.finditer(text):
        if not m.group(1).startswith(_TORCH_DIR) and os.path.exists(m.group(1)):
            import linecache

            return f"{m.group(1)}:{m.group(2)}", linecache.getline(m.group(1), int(m.group(2))).strip()
    return None


def _site_at(sites: list[CallSite], where: tuple[str, str] | None) -> CallSite | None:
    if where is not None:
        for s in sites:
            if s.location == where[0]:
                return s
    return sites[0] if sites else None


def _place(evidence: dict[str, Any], site: CallSite | None, where: tuple[str, str] | None) -> dict[str, Any]:
    """The call site's module and line (what the cause names); where torch stopped, if elsewhere, as ``guard_*``."""
    if site is not None:
        evidence.update(site.evidence())
    if where is not None and site is not None and site.location and site.location != where[0]:
        evidence["guard_location"], evidence["guard_source"] = where
    elif where is not None:
        evidence["location"], evidence["source"] = where
    return evidence


def _data_dependent(ctx: Context, text: str, types: set, base: dict) -> list[Finding] | None:
    lowered = text.lower()
    if "GuardOnDataDependentSymNode" not in types and "data-dependent" not in lowered and "data dependent" not in lowered:
        return None
    where = user_location(text)
    site = _site_at(ctx.trace.escapes_of(in_function=False), where)
    kind = site.kind if site else ("item" if "specialized integer" in lowered else "bool")
    evidence = _place({**base, "escape": kind}, site, where)
    where_text = site.where() if site else (where[0] if where else "the model")
    if kind == "bool":
        return [Finding(
            "DATA002", "torch.export refuses a branch on tensor values",
            f"A Python `if` on a tensor's value in {where_text} needs the value at export time; torch.export only "
            "knows it at run time, so it stops (it would otherwise freeze one branch).",
            evidence,
            "Compute both branches and select with tensor ops:\n"
            "    out = torch.where(cond, branch_true(x), branch_false(x))\n"
            "or keep real control flow: out = torch.cond(cond, branch_true, branch_false, (x,))",
            other_exporter_retry(ctx, action="export with the TorchScript exporter (it traces one branch; "
                                              "checked on other values)"),
        )]
    return [Finding(
        "DATA003", "A tensor value was turned into a Python number",
        f"{where_text} turns a tensor into a Python value (.{kind}()) that decides a shape or a slice; "
        "torch.export cannot guard on it.",
        evidence,
        "Keep it a tensor (index with tensors, torch.narrow), or tell torch.export its range with "
        "torch._check(n >= 0) / torch._check_is_size(n) after n = t.item().",
        other_exporter_retry(ctx),
    )]


def _autograd_function(ctx: Context, text: str, types: set, base: dict) -> list[Finding] | None:
    functions = ctx.trace.autograd_functions
    if not functions:
        return None
    keys = ("tensor subclasses", "lift_fresh", "PythonOp", "Python operator", "autograd/function.py", "numpy")
    inside = ctx.trace.escapes_of(in_function=True)
    if not inside and not any(k in text for k in keys):
        return None
    site = inside[0] if inside else next(iter(functions.values()))
    name = site.autograd_function or "the Function"
    evidence = {**base, **site.evidence(), "has_symbolic": site.has_symbolic}
    other = other_exporter_spec(ctx.spec or ctx.setting.spec)
    uses_symbolic = other.exporter == "torchscript" and site.has_symbolic
    action = (f"export with the TorchScript exporter, which uses {name}.symbolic" if uses_symbolic
              else f"export with the {other.exporter} exporter")
    escape = f" (it calls .{site.kind}() at {site.location})" if inside else ""
    return [Finding(
        "OP003", f"Custom autograd Function {name} cannot be exported",
        f"torch.autograd.Function {name}'s forward leaves PyTorch{escape}, so the {ctx.setting.exporter} exporter "
        "cannot trace it" + (" (it has a symbolic() the TorchScript exporter would use)." if site.has_symbolic else "."),
        evidence,
        f"TorchScript exporter: give {name} a symbolic:\n"
        "    @staticmethod\n    def symbolic(g, x):\n        return g.op('Clip', x, ...)\n"
        "dynamo exporter: make it a torch.library custom op and translate it:\n"
        "    @torch.library.custom_op('mylib::op', mutates_args=())  # + register_fake\n"
        "    torch.onnx.export(..., dynamo=True, custom_translation_table={torch.ops.mylib.op.default: onnx_fn})",
        other_exporter_retry(ctx, action=action),
    )]


def _opset(ctx: Context, text: str, types: set, base: dict) -> list[Finding] | None:
    m = _OPSET.search(text)
    if not m:
        return None
    op, opset, required = m.group(1), int(m.group(2)), int(m.group(3))
    site = ctx.trace.find_call(op)
    evidence = _place({**base, "op": op, "opset": opset, "required_opset": required}, site, None)
    spec = (ctx.spec or ctx.setting.spec)
    assert spec is not None
    fixed = spec.replace(opset=required)
    action = f"re-export at opset {required}"
    return [Finding(
        "OP002", f"Opset {opset} is too old for {op}",
        f"{op}" + (f" (called in {site.where()})" if site else "") + f" has an ONNX form only from opset {required}.",
        evidence, f"wb.ExportSpec(..., opset={required})  # or newer",
        Retry(action, {"opset": required}, settings=[(action, ctx.setting.replace(spec=fixed))]),
    )]


def _unsupported(ctx: Context, text: str, types: set, base: dict) -> list[Finding] | None:
    m = _TS_UNSUPPORTED.search(text) or _DYNAMO_UNSUPPORTED.search(text) or _COULD_NOT_EXPORT.search(text)
    if not m:
        return None
    op = m.group(1)
    site = ctx.trace.find_call(op)
    evidence = _place({**base, "op": op}, site, None)
    fx = _FX_NODE.search(text)
    if fx:
        evidence["node"] = fx.group(1)
    short_op = op.replace("::", ".").split(".")[1] if "." in op.replace("::", ".") else op
    where = f" in {site.where()}" if site else ""
    return [Finding(
        "OP001", f"{op} has no ONNX translation",
        f"The {ctx.setting.exporter} exporter has no translation for {op}{where}.",
        evidence,
        f"1. the other exporter: {other_exporter_spec(ctx.spec or ctx.setting.spec).exporter!r};\n"
        f"2. a decomposition: rewrite the {short_op} call with ops both exporters support;\n"
        f"3. TorchScript exporter: torch.onnx.register_custom_op_symbolic('aten::{short_op}', symbolic_fn, opset);\n"
        f"4. dynamo exporter: torch.onnx.export(..., dynamo=True, custom_translation_table="
        f"{{torch.ops.aten.{short_op}.default: onnxscript_fn}});\n"
        f"5. a custom domain: g.op('mydomain::{short_op.capitalize()}', ...) plus an ONNX Runtime custom-op library.",
        other_exporter_retry(ctx),
    )]


def _constraint(ctx: Context, text: str, types: set, base: dict) -> list[Finding] | None:
    if "Constraints violated" not in text and "specialized it to be a constant" not in text:
        return None
    spec = ctx.spec or ctx.setting.spec
    if spec is None:
        return None
    hits = {(name, dim): sym for name, axes in spec.dynamic_axes.items() for dim, sym in axes.items()
            if re.search(rf"\b{re.escape(sym)}\b", text)}
    if not hits:
        return None
    axes = {n: {d: s for d, s in a.items() if (n, d) not in hits} for n, a in spec.dynamic_axes.items()}
    axes = {n: a for n, a in axes.items() if a}
    (name, dim), sym = next(iter(hits.items()))
    action = f"re-export without the dynamic axis {sym!r}"
    return [Finding(
        "DYN004", f"The axis {sym!r} is declared dynamic but the model fixes it",
        f"torch.export found that the model's code only works at one size of {name}[{dim}] ({sym!r}).",
        {**base, "input": name, "axis": dim, "symbol": sym},
        f"dynamic_axes={axes!r}",
        Retry(action, {"dynamic_axes": axes}, settings=[(action, ctx.setting.replace(spec=spec.replace(dynamic_axes=axes)))]),
    )]


def _torch_fails(ctx: Context, text: str, types: set, base: dict) -> list[Finding] | None:
    if not isinstance(ctx.attempt.error("export"), InvalidInputError) or "failed on the example" not in text:
        return None
    return [Finding(
        "TORCH001", "The model fails in PyTorch on its example",
        "PyTorch raises on the example inputs, so there is nothing to export.",
        {**base, "error": ctx.trace.error or brief(text)},
        "Pass example inputs the forward accepts (count, shapes, dtypes, device).",
        severity="error",
    )]


RULES: tuple[Rule, ...] = (_data_dependent, _autograd_function, _opset, _unsupported, _constraint, _torch_fails)


def _located(findings: list[Finding], loc: Location | None) -> list[Finding]:
    """Add where it broke to each finding that does not say so yet (its cause names the place too)."""
    if loc is None:
        return findings
    for f in findings:
        had = "location" in f.evidence
        for key, value in loc.evidence().items():
            f.evidence.setdefault(key, value)
        if not had and f.evidence.get("location") and str(f.evidence["location"]) not in f.cause:
            f.cause = f"{f.cause.rstrip()} It broke at {loc.where()}."
    return findings


def _specific(ctx: Context, exc: BaseException | None, text: str, types: set, base: dict,
              loc: Location | None) -> list[Finding]:
    if isinstance(exc, NonTensorOutputError):
        return [non_tensor_finding(ctx, exc, base)]
    if isinstance(exc, OutputNamesError):
        return [names_finding(ctx, exc, base)]
    for capture_rule in CAPTURE_RULES:
        found = capture_rule(ctx, text, loc, base)
        if found:
            return found
    for rule in RULES:
        found = rule(ctx, text, types, base)
        if found:
            return found
    retry = None if isinstance(exc, SpecError) else other_exporter_retry(ctx)
    return [Finding(
        "EXP001", f"The {ctx.setting.exporter} exporter failed at the {getattr(exc, 'stage', 'export')} stage",
        brief(exc, 400), base,
        "Read the signature and the line shown; try the other exporter.", retry,
    )]


def export_findings(ctx: Context) -> list[Finding]:
    """The findings for a failed export (none when setup rules already explain it), each with the line of
    the model's code where it broke when torch's error or traceback says."""
    attempt = ctx.attempt
    if attempt.stages["export"] is not False or ctx.has("DEV001", "NUM001", "DYN003"):
        return []
    exc = attempt.error("export")
    chain = exception_chain(exc)
    text = strip_ansi("\n".join(str(e) for e in chain))
    types = {type(e).__name__ for e in chain}
    stage = getattr(exc, "stage", "spec" if isinstance(exc, SpecError) else "export")
    # torch's own chatter (C++ warnings, the TorchScript IR dump) goes into the evidence, not the notebook
    base = {"signature": brief(exc), "stage": stage, "exporter": ctx.setting.exporter,
            **attempt.printed_evidence("export")}
    if isinstance(exc, NonTensorOutputError):
        loc = return_site(ctx.model, exc.path.rsplit(".", 1)[-1])
    elif isinstance(exc, OutputNamesError):
        extra = [n for n in exc.suggested if n not in exc.given]
        loc = return_site(ctx.model, extra[0] if extra else None)
    else:
        loc = locate(ctx.model, chain, text)
    return _located(_specific(ctx, exc, text, types, base, loc), loc)
