"""Shape probes: run PyTorch and ORT at other sizes of every dynamic axis."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import onnxruntime as ort
from torch import nn

from workbench.core._format import badge, esc, fmt_num, html_table
from workbench.core._io import OnnxModel
from workbench.core.compare import compare_arrays
from workbench.core.feeds import build_feed, run_torch
from workbench.core.inputs import (as_input_tuple, axis_symbols, check_inputs_fit, check_module,
                                   example_sizes, resize_inputs)
from workbench.core.session import SessionConfig, load_session
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError, SpecError, brief

__all__ = ["ProbeCase", "ProbeReport", "declared_static", "probe_shapes", "probe_sizes"]

Status = Literal["match", "mismatch", "ort_failed", "torch_failed"]


@dataclass
class ProbeCase:
    """One probed shape: the sizes of the dynamic axes, what happened and the numbers."""

    sizes: dict[str, int]
    input_shapes: list[tuple[int, ...]]
    status: Status
    max_abs: float | None = None
    max_rel: float | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "match"

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.sizes.items())


@dataclass
class ProbeReport:
    """Per probed shape: ran and matched, failed (with ORT's message) or numerically off."""

    cases: list[ProbeCase]
    symbols: list[str]
    example: dict[str, int]
    declared: dict[str, list[Any]] = field(default_factory=dict)
    tolerance: str = "fp32"

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok or c.status == "torch_failed" for c in self.cases)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failures(self) -> list[ProbeCase]:
        return [c for c in self.cases if c.status in ("mismatch", "ort_failed")]

    @property
    def static_in_graph(self) -> dict[str, list[int]]:
        """Inputs whose graph dims are fixed numbers where the spec asked for a dynamic axis."""
        return {name: dims for name, dims in self.declared.items() if dims}

    def to_pandas(self) -> Any:
        import pandas as pd

        rows = [{**c.sizes, "input_shapes": str(c.input_shapes), "status": c.status, "max_abs": c.max_abs,
                 "max_rel": c.max_rel, "message": c.message} for c in self.cases]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        head = (f"ProbeReport {'PASS' if self.ok else 'FAIL'}: {len(self.cases)} shapes over "
                f"{self.symbols} (example {self.example}), {len(self.failures)} failing")
        lines = [head] + [f"  {c.label}: {c.status} {c.message[:160]}" for c in self.failures[:8]]
        if self.static_in_graph:
            lines.append(f"  graph has static dims where the spec asked for dynamic: {self.static_in_graph}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [[c.label, str(c.input_shapes), c.status, fmt_num(c.max_abs) if c.max_abs is not None else "",
                 c.message[:200]] for c in self.cases]
        return (f"<div><b>Shape probes</b> {badge(self.ok)} over {esc(self.symbols)} at {esc(self.tolerance)}"
                + html_table(["sizes", "input shapes", "status", "max abs", "message"], rows) + "</div>")


def probe_sizes(symbols: Sequence[str], example: dict[str, int], *, large: int | None = None) -> list[dict[str, int]]:
    """Sizes to probe: each axis alone at 1, 2, the example's, a larger and an odd (7) size,
    the others at the example's; then all axes at 1, and all at odd sizes together."""
    out: list[dict[str, int]] = []

    def add(sizes: dict[str, int]) -> None:
        if sizes not in out:
            out.append(sizes)

    add(dict(example))
    for sym in symbols:
        ex = example.get(sym, 2)
        for value in (1, 2, ex, large or max(2 * ex, 8), 7):
            add({**example, sym: value})
    if len(symbols) > 1:
        add({s: 1 for s in symbols})
        add({s: v for s, v in zip(symbols, itertools.cycle((3, 7, 5)))})
        add({s: v for s, v in zip(symbols, itertools.cycle((4, max(example.get(symbols[-1], 2) // 2, 3))))})
    return out


def declared_static(session: ort.InferenceSession, spec: ExportSpec) -> dict[str, list[int]]:
    """For each input, the dims the spec marks dynamic but the graph declares as fixed numbers."""
    out: dict[str, list[int]] = {}
    for inp in session.get_inputs():
        axes = spec.dynamic_axes.get(inp.name, {})
        fixed = [d for d in axes if d < len(inp.shape) and isinstance(inp.shape[d], int)]
        if fixed:
            out[inp.name] = fixed
    return out


def probe_shapes(
    model: nn.Module,
    onnx_model: OnnxModel,
    example_inputs: Any,
    *,
    spec: ExportSpec,
    tolerance: Tolerance = "fp32",
    config: SessionConfig | None = None,
    sizes: Sequence[dict[str, int]] | None = None,
    seed: int = 1,
) -> ProbeReport:
    """Run PyTorch and ORT at other values of every dynamic axis and report each shape.

    Catches exports whose graph declares dynamic axes yet fails or drifts at other sizes
    (a size-1 example specialized by the exporter, a Reshape baked by tracing). ``sizes``
    replaces the default grid (see ``probe_sizes``); inputs are made by ``resize_inputs``.
    """
    check_module(model)
    if not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec, received {type(spec).__name__}.")
    tol_name, _, _ = resolve_tolerance(tolerance)
    example = as_input_tuple(example_inputs)
    check_inputs_fit(model, example)
    symbols = axis_symbols(spec.dynamic_axes, spec.input_names)
    if not symbols:
        raise InvalidInputError(
            f"The spec declares no dynamic input axes (dynamic_axes={spec.dynamic_axes}), so there is nothing "
            "to probe. Add e.g. dynamic_axes={'input_ids': {0: 'batch'}} and export again."
        )
    session = onnx_model if isinstance(onnx_model, ort.InferenceSession) else load_session(onnx_model, config)
    output_names = [o.name for o in session.get_outputs()]
    ex_sizes = example_sizes(example, spec.input_names, spec.dynamic_axes)
    cases: list[ProbeCase] = []
    for case_sizes in sizes or probe_sizes(symbols, ex_sizes):
        inputs = resize_inputs(example, spec.input_names, spec.dynamic_axes, case_sizes, seed=seed)
        shapes = [tuple(t.shape) for t in inputs]
        try:
            expected = run_torch(model, inputs)
        except Exception as exc:
            cases.append(ProbeCase(case_sizes, shapes, "torch_failed",
                                   message=f"PyTorch itself fails here: {brief(exc, 400)}"))
            continue
        try:
            actual = session.run(None, build_feed(session, inputs))
        except Exception as exc:
            cases.append(ProbeCase(case_sizes, shapes, "ort_failed", message=brief(exc, 400)))
            continue
        comparison = compare_arrays(expected, actual, tolerance=tolerance, names=output_names)
        status: Status = "match" if comparison.ok else "mismatch"
        message = "" if comparison.ok else "; ".join(o.describe() for o in comparison.failures[:2])
        cases.append(ProbeCase(case_sizes, shapes, status, comparison.max_abs, comparison.max_rel, message))
    return ProbeReport(cases, symbols, ex_sizes, declared_static(session, spec), tol_name)
