"""Rules for export failures public architectures hit on current torch, read from torch.export's and
the ONNX translation's messages: a view of a non-contiguous tensor with symbolic sizes (EXP002), a
decomposition that fails otherwise (EXP003), a data-dependent size from an unbacked symbol (DATA005),
Python arithmetic on sizes that contradicts the dynamic range (DYN007). Each names the line where it
broke (``locate``) and retries what may cure it, in order."""

from __future__ import annotations

import re
from typing import Any

from workbench.doctor.context import Context, other_exporter_retry
from workbench.doctor.findings import Finding, Retry
from workbench.doctor.locate import Location

__all__ = ["CAPTURE_RULES"]

_VIEW = re.compile(r"Cannot view a tensor with shape (torch\.Size\(\[[^\]]*\]\)) and strides (\([^)]*\)) as a "
                   r"tensor with shape (\([^)]*\))")
_NODE = re.compile(r"While executing %(\w+) : .*?target=([\w.]+)")
_UNBACKED = re.compile(r"\bu\d+\b")
_VR = re.compile(r"(-?\d+) not in VR\[(-?\d+), (-?\d+)\]")


def _where(loc: Location | None) -> str:
    return f" at {loc.where()}" if loc is not None else ""


def _static_retry(ctx: Context, label: str) -> tuple[str, Any]:
    spec = ctx.spec or ctx.setting.spec
    assert spec is not None
    return label, ctx.setting.replace(spec=spec.replace(dynamic_axes={}))


def _chain(first: Retry, *more: tuple[str, Any]) -> Retry:
    first.settings.extend(more)
    return first


def view_rule(ctx: Context, text: str, loc: Location | None, base: dict) -> list[Finding] | None:
    m = _VIEW.search(text)
    if not m:
        return None
    evidence = {**base, "shape": m.group(1), "strides": m.group(2), "view_shape": m.group(3)}
    node = _NODE.search(text)
    if node:
        evidence["node"], evidence["op"] = node.group(1), node.group(2)
    retry = other_exporter_retry(ctx)
    if (ctx.spec or ctx.setting.spec) and (ctx.spec or ctx.setting.spec).dynamic_axes:
        retry = _chain(retry, _static_retry(ctx, "re-export with every axis static"))
    return [Finding(
        "EXP002", "A view of a non-contiguous tensor with symbolic sizes",
        f"The model reshapes a tensor of shape {m.group(1)[11:-1]} with strides {m.group(2)} (not contiguous: a "
        f"transpose or permute came before){_where(loc)}. Eagerly this copies; with symbolic sizes the exporter "
        "lowers it to a view, which those strides do not allow, and the translation stops.",
        evidence,
        "Make it contiguous before the reshape at that line:\n    x = x.contiguous().view(...)   # or .reshape on a "
        ".contiguous() tensor\nor export with the TorchScript exporter, or with that axis static.",
        retry,
    )]


def decomposition_rule(ctx: Context, text: str, loc: Location | None, base: dict) -> list[Finding] | None:
    if "Failed to decompose" not in text:
        return None
    node = _NODE.search(text)
    evidence = dict(base)
    if node:
        evidence["node"], evidence["op"] = node.group(1), node.group(2)
    spec = ctx.spec or ctx.setting.spec
    retry = other_exporter_retry(ctx)
    if spec is not None and spec.exporter == "dynamo":
        other = 20 if spec.opset != 20 else 18
        label = f"re-export at opset {other}"
        retry = _chain(retry, (label, ctx.setting.replace(spec=spec.replace(opset=other))))
    op = f" ({node.group(2)})" if node else ""
    return [Finding(
        "EXP003", "A decomposition fails during the export",
        f"torch.export captured the model, but decomposing an operator{op}{_where(loc)} into what ONNX translates "
        "failed.", evidence,
        "Rewrite that line with simpler ops, or use the other exporter / another opset.", retry,
    )]


def unbacked_rule(ctx: Context, text: str, loc: Location | None, base: dict) -> list[Finding] | None:
    if "GuardOnDataDependentSymNode" not in text and "data-dependent" not in text.lower():
        return None
    if ctx.trace.escapes_of(in_function=False) or not _UNBACKED.search(text):
        return None  # an escape the eager trace saw: DATA002 / DATA003 say more
    return [Finding(
        "DATA005", "A data-dependent size reaches a shape or a branch",
        f"A size known only at run time (the unbacked symbol {_UNBACKED.search(text).group(0)}) decides a shape or a "
        f"branch{_where(loc)}; torch.export cannot guard on it.",
        {**base, "symbol": _UNBACKED.search(text).group(0)},
        "At that line: keep the size static (pad to a fixed length), bound it with torch._check(...), or compute "
        "with masks instead of indexing.",
        other_exporter_retry(ctx),
    )]


def range_rule(ctx: Context, text: str, loc: Location | None, base: dict) -> list[Finding] | None:
    m = _VR.search(text)
    if not m:
        return None
    spec = ctx.spec or ctx.setting.spec
    retry = other_exporter_retry(ctx)
    if spec is not None and spec.dynamic_axes:
        retry = Retry("re-export with every axis static", {"dynamic_axes": {}},
                      settings=[_static_retry(ctx, "re-export with every axis static")] + retry.settings)
    return [Finding(
        "DYN007", "Python arithmetic on sizes contradicts the dynamic range",
        f"The model computes with sizes in Python so that a dynamic dimension is pinned to [{m.group(2)}, "
        f"{m.group(3)}], but the example has {m.group(1)}: torch.export's range analysis fails{_where(loc)}.",
        {**base, "value": int(m.group(1)), "range": [int(m.group(2)), int(m.group(3))]},
        "Keep that size symbolic at the line shown (tensor ops instead of Python ints, no comparison of a size "
        "with a config value), or export the axis static.",
        retry,
    )]


CAPTURE_RULES = (view_rule, decomposition_rule, unbacked_rule, range_rule)
