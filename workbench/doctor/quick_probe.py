"""Sizes other than the example's, quickly (the export form and the live diff use it): the quick shape
probes run after every export, the doctor's finding for a probe that fails (``DYN001``, ``DYN002``,
``DYN004``, ``DYN005`` or ``DYN006``, made from the doctor's codes table), and a run of ONNX
Runtime that fails at a size, said in words (the shape, the node, the example's size it holds, the
exporter and the fix) instead of ONNX Runtime's message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import nn

from workbench.core._export_files import exported_spec
from workbench.core.inputs import axis_symbols, example_sizes
from workbench.core.ort_errors import Failure, classify_run_error
from workbench.core.probe import ProbeCase, ProbeReport, probe_shapes
from workbench.core.spec import ExportSpec
from workbench.doctor.codes import code_info
from workbench.doctor.context import other_exporter_spec
from workbench.doctor.findings import Finding, Retry
from workbench.errors import WorkbenchError, brief

_REQUESTED = re.compile(r"requested shape:\s*\{([-\d,\s]*)\}")
_GIVEN = re.compile(r"Input shape:\s*\{([-\d,\s]*)\}")
EXPORTERS = ("dynamo", "torchscript")


def quick_sizes(example: Mapping[str, int]) -> list[dict[str, int]]:
    """Two small shapes off the example on every dynamic axis at once: all axes at 1, then at 3
    (5 where the example has 3). Any size the graph baked in from the example fails at one of them."""
    return [{s: 1 for s in example}, {s: 5 if v == 3 else 3 for s, v in example.items()}]


def quick_probe(model: nn.Module, onnx_model: str | Path, example_inputs: Sequence[Any],
                spec: ExportSpec) -> ProbeReport | None:
    """``wb.probe_shapes`` at ``quick_sizes``; ``None`` when the spec has no dynamic input axis
    (the graph is meant for the example's sizes only)."""
    symbols = axis_symbols(spec.dynamic_axes, spec.input_names)
    if not symbols:
        return None
    example = example_sizes(example_inputs, spec.input_names, spec.dynamic_axes)
    return probe_shapes(model, onnx_model, example_inputs, spec=spec, sizes=quick_sizes(example))


def _numbers(pattern: re.Pattern[str], text: str) -> list[int]:
    match = pattern.search(text)
    return [int(x) for x in match.group(1).replace(" ", "").split(",") if x.lstrip("-").isdigit()] if match else []


def baked_sizes(message: str, example: Mapping[str, int], sizes: Mapping[str, int]) -> dict[str, int]:
    """The axes whose example size a failing node still asks for (``requested shape:{...}`` in ONNX
    Runtime's message) although the inputs have another size: ``{symbol: example size}``."""
    requested = _numbers(_REQUESTED, message)
    return {s: v for s, v in example.items() if v in requested and sizes.get(s, v) != v}


def _failure(case: ProbeCase) -> Failure:
    return classify_run_error(RuntimeError(case.message))


def _code(report: ProbeReport, failed: list[ProbeCase]) -> str:
    """The code of the first failing probe: a node that fails, or a declared-static axis, from an
    example of size 1 is DYN001; a failing node otherwise DYN002; a static axis DYN004; wrong values
    at every size that runs DYN005; anything else DYN006."""
    size_one = any(v <= 1 for v in report.example.values())
    if not failed:
        return "DYN005"
    if _failure(failed[0]).node:
        return "DYN001" if size_one else "DYN002"
    if report.static_in_graph:
        return "DYN001" if size_one else "DYN004"
    return "DYN006"


def probe_finding(report: ProbeReport, spec: ExportSpec) -> Finding | None:
    """The doctor's finding for the first failing shape of ``report`` (``None`` when every probed
    shape runs and matches), with a retry by the other exporter (``Retry.change``: its spec fields)."""
    if report.ok or not report.failures:
        return None
    failed = [c for c in report.failures if c.status == "ort_failed"]
    first = (failed or report.failures)[0]
    code = _code(report, failed)
    info = code_info(code)
    failure = _failure(first) if failed else None
    evidence: dict[str, Any] = {"exporter": spec.exporter, "example_sizes": dict(report.example),
                                "failing_sizes": "; ".join(c.label for c in report.failures)}
    baked = baked_sizes(first.message, report.example, first.sizes)
    if failure is not None and failure.node:
        evidence.update(node=failure.node.strip("'"), op_type=failure.op_type)
        what = (f"its {failure.op_type} node {failure.node} holds the example's "
                f"{_label(baked) if baked else 'sizes'}, which tracing recorded as a constant")
    else:
        what = f"{brief(first.message, 200).rstrip('.')}. {info.meaning.rstrip('.')}"
    if baked:
        evidence["baked"] = baked
    if report.static_in_graph:
        evidence["static_in_graph"] = report.static_in_graph
    evidence["probe_message"] = failure.what if failure is not None else brief(first.message, 300)
    cause = (f"The graph declares {', '.join(report.symbols)} dynamic and runs at the example "
             f"({_label(report.example)}), but not at {first.label}: {what}.")
    return Finding(code, info.title, cause, evidence, info.fix, _retry(code, report, spec))


def _retry(code: str, report: ProbeReport, spec: ExportSpec) -> Retry:
    """DYN001: the same export from an example resized to 2 on its size-1 axes; else the other exporter.
    ``change`` holds spec fields, and ``example_sizes`` for a resized example."""
    small = {s: 2 for s, v in report.example.items() if v <= 1}
    if code == "DYN001" and small:
        return Retry(f"re-export from an example resized to {_label(small)}", {"example_sizes": small})
    other = other_exporter_spec(spec)
    return Retry(f"re-export with the {other.exporter} exporter", {"exporter": other.exporter, "opset": other.opset})


def _label(sizes: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def exported_with(onnx_model: str | Path) -> str | None:
    """The exporter ``wb.export`` wrote ``onnx_model`` with (from its record beside the file), if known."""
    spec = exported_spec(onnx_model)
    return spec.exporter if spec is not None and spec.exporter in EXPORTERS else None


def is_run_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is ONNX Runtime failing inside a run (raw, or as the core's explained error)."""
    failure = getattr(exc, "failure", None)
    if isinstance(failure, Failure):
        return failure.reason in ("node_failed", "run_failed")
    return type(exc).__module__.startswith("onnxruntime")


def shape_text(names: Sequence[str], shapes: Sequence[Sequence[int]]) -> str:
    """``input_ids 2×48, mask 2×48``."""
    return ", ".join(f"{n} {'×'.join(str(d) for d in s)}" for n, s in zip(names, shapes))


def explain_size_failure(exc: BaseException, *, names: Sequence[str], shapes: Sequence[Sequence[int]],
                         example: Mapping[str, int], sizes: Mapping[str, int],
                         exporter: str | None) -> WorkbenchError:
    """A ``WorkbenchError`` naming the shape ONNX Runtime fails at and why, for a failed run ``exc``."""
    failure = getattr(exc, "failure", None)
    if not isinstance(failure, Failure):
        failure = classify_run_error(exc)
    raw = " ".join(str(exc).split())
    baked = baked_sizes(raw, example, sizes)
    node = f"its {failure.op_type} node {failure.node}" if failure.node else "the graph"
    if baked:
        why = f"{node} holds the example's {_label(baked)}"
        given, requested = _numbers(_GIVEN, raw), _numbers(_REQUESTED, raw)
        if given and requested:
            why += (f" (it reshapes data of shape {'×'.join(map(str, given))} to "
                    f"{'×'.join(map(str, requested))})")
    else:
        why = f"{node} fails: {brief(failure.detail or raw, 200)}"
    how = f" The file was exported with {exporter}." if exporter else ""
    if exporter == "torchscript" or baked:
        fix = ("Re-export with the dynamo exporter (it keeps sizes symbolic)"
               + (f", or keep {_label(baked)}" if baked else "")
               + "; wb.probe_shapes(model, onnx_model, example_inputs, spec=spec) lists the sizes that run.")
    else:
        fix = (f"{failure.fix}; wb.probe_shapes(model, onnx_model, example_inputs, spec=spec) lists the sizes "
               "that run.")
    only = ", so the graph only runs at the sizes it was exported with" if baked else ""
    return WorkbenchError(f"ONNX Runtime cannot run this file at {shape_text(names, shapes)}: {why}{only}.{how} {fix}")
