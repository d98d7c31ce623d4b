"""Export a PyTorch model to ONNX with checked dynamic axes, a cache and an atomic write.

Safe from worker threads: an export holds ``capture.CAPTURE_LOCK`` and ``_locks.TORCH_LOCK``
exclusively (torch.export is not thread-safe, and it swaps the model's weights for fake tensors
while it traces; see ``_locks`` for why a lock and not a child process), records only its own
thread's warnings (``_warn_capture``), captures what torch's C++ code prints (``capture``) into
``ExportResult.torch_output``, and quiets torch's loggers with a reference-counted override. How
the files reach their place, and the cache record, are in ``_export_files``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import onnx
import torch
from torch import nn

from workbench.core import _export_files as files
from workbench.core._export_notes import QUIET_LOGS as _QUIET_LOGS
from workbench.core._export_notes import first_lines as _first_lines
from workbench.core._export_notes import opset_warnings
from workbench.core._export_notes import printed_warnings as _printed_warnings
from workbench.core._export_notes import unique_warnings as _unique_warnings
from workbench.core._format import badge, esc, fmt_time, html_table
from workbench.core._locks import TORCH_LOCK
from workbench.core._warn_capture import capture_warnings
from workbench.core.capture import CAPTURE_LOCK, captured_output
from workbench.core._export_outputs import has_plain_dataclass, output_leaves, output_names_for
from workbench.core.fingerprint import fingerprint
from workbench.core.graph import ModelSummary, summarize
from workbench.core.inputs import as_input_tuple, check_inputs_fit, check_module, forward_arity
from workbench.core.spec import ExportSpec
from workbench.errors import ExportError, InvalidInputError, OutputNamesError, SpecError


@dataclass
class ExportResult:
    """What an export wrote and how it went. ``summary`` is computed on first use."""

    out: Path
    spec: ExportSpec
    duration_s: float
    warnings: list[str] = field(default_factory=list)
    torch_version: str = torch.__version__
    onnx_version: str = onnx.__version__
    fingerprint: str = ""
    cached: bool = False
    torch_output: str = ""  # what torch printed (C++ included) during the export

    @property
    def exporter(self) -> str:
        return self.spec.exporter

    @property
    def opset(self) -> int:
        return self.spec.opset

    @cached_property
    def summary(self) -> ModelSummary:
        return summarize(self.out)

    def __repr__(self) -> str:
        how = "cached" if self.cached else f"in {fmt_time(self.duration_s)}"
        text = f"ExportResult({str(self.out)!r}, exporter={self.exporter!r}, opset={self.opset}, {how}"
        if self.warnings:
            text += f", {len(self.warnings)} warning(s)"
        return text + ")"

    def _repr_html_(self) -> str:
        rows = [["out", str(self.out)], ["exporter", self.exporter], ["opset", self.opset],
                ["duration", "cached" if self.cached else fmt_time(self.duration_s)],
                ["torch / onnx", f"{self.torch_version} / {self.onnx_version}"]]
        warn = "".join(f"<li>{esc(w)}</li>" for w in self.warnings)
        return (f"<div><b>Export</b> {badge(True, 'EXPORTED')}{html_table(['', ''], rows)}"
                + (f"<details><summary>{len(self.warnings)} warning(s)</summary><ul>{warn}</ul></details>" if warn else "")
                + "</div>")


def _default_spec(model: nn.Module, n_inputs: int, n_outputs: int) -> ExportSpec:
    _, _, names = forward_arity(model)
    input_names = tuple(names[:n_inputs]) if len(names) >= n_inputs else tuple(f"input_{i}" for i in range(n_inputs))
    output_names = ("output",) if n_outputs == 1 else tuple(f"output_{i}" for i in range(n_outputs))
    return ExportSpec(input_names=input_names, output_names=output_names)


def _count_outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[tuple[str, torch.Tensor]]:
    """``(path, tensor)`` per output (see ``_export_outputs``); ``InvalidInputError`` when the forward
    raises, ``NonTensorOutputError`` when it returns something that is not a tensor (a cache object)."""
    try:
        with TORCH_LOCK.shared(), torch.inference_mode():
            outputs = model(*inputs)
    except Exception as exc:
        shapes = [f"{tuple(t.shape)} {t.dtype}" for t in inputs]
        raise InvalidInputError(
            f"{type(model).__name__} failed on the example inputs {shapes}: {type(exc).__name__}: {exc}. "
            "Pass example inputs that the model's forward accepts (shapes, dtypes, device)."
        ) from exc
    return output_leaves(outputs, owner=type(model).__name__)


def check_spec(model: nn.Module, example_inputs: Any, *, spec: ExportSpec | None = None) -> ExportSpec:
    """Check a spec against the model before anything is exported; fill in defaults.

    Raises ``SpecError`` for a model in training mode, names that do not match the
    forward's arity or the outputs, and ``dynamic_axes`` keys or dimensions that name nothing.
    """
    check_module(model)
    inputs = as_input_tuple(example_inputs)
    if model.training:
        raise SpecError(
            f"{type(model).__name__} is in training mode: dropout and batch-norm would be exported "
            "as in training and the outputs would differ from inference. Call model.eval() before exporting."
        )
    check_inputs_fit(model, inputs)
    outputs = _count_outputs(model, inputs)
    if spec is None:
        return _default_spec(model, len(inputs), len(outputs))
    if not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec, received {type(spec).__name__}. Build one with wb.ExportSpec(...).")
    if not spec.input_names or not spec.output_names:
        default = _default_spec(model, len(inputs), len(outputs))
        spec = spec.replace(input_names=spec.input_names or default.input_names,
                            output_names=spec.output_names or default.output_names)
    _, _, params = forward_arity(model)
    if len(spec.input_names) != len(inputs):
        raise SpecError(
            f"input_names has {len(spec.input_names)} name(s) {list(spec.input_names)} but the example has "
            f"{len(inputs)} input(s) for {type(model).__name__}.forward({', '.join(params)}). "
            "Give one name per example input, in order."
        )
    if len(spec.output_names) != len(outputs):
        suggested = output_names_for([p for p, _ in outputs])
        raise OutputNamesError(
            f"output_names has {len(spec.output_names)} name(s) {list(spec.output_names)} but the model returns "
            f"{len(outputs)} tensor(s) {[f'{p} {tuple(o.shape)}' for p, o in outputs]}. Give one name per output, "
            f"e.g. output_names={suggested!r}.", given=spec.output_names, count=len(outputs), suggested=suggested)
    shapes = {n: tuple(t.shape) for n, t in zip(spec.input_names, inputs)}
    shapes.update({n: tuple(t.shape) for n, (_, t) in zip(spec.output_names, outputs)})
    for key, axes in spec.dynamic_axes.items():
        if key not in shapes:
            import difflib

            lower = {n.lower(): n for n in shapes}
            close = [lower[key.lower()]] if key.lower() in lower else difflib.get_close_matches(key, list(shapes), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SpecError(
                f"dynamic_axes names {key!r}, which is neither an input {list(spec.input_names)} nor an output "
                f"{list(spec.output_names)}: the model would be exported with static shapes.{hint} "
                "Nothing was written."
            )
        for dim in axes:
            if dim >= len(shapes[key]):
                raise SpecError(
                    f"dynamic_axes[{key!r}] marks dimension {dim}, but {key!r} has rank {len(shapes[key])} "
                    f"(shape {shapes[key]}). Dimensions count from 0. Nothing was written."
                )
    return spec


def dynamic_shapes_for(spec: ExportSpec, inputs: Sequence[torch.Tensor]) -> tuple[Any, ...] | None:
    """Translate ``dynamic_axes`` into torch.export ``dynamic_shapes`` (one entry per positional input).

    The same symbolic name on several inputs becomes one ``Dim``, so torch.export knows the sizes are equal.
    """
    if not any(name in spec.dynamic_axes for name in spec.input_names):
        return None
    dims: dict[str, torch.export.Dim] = {}
    shapes: list[Any] = []
    for name, _ in zip(spec.input_names, inputs):
        axes = spec.dynamic_axes.get(name)
        if not axes:
            shapes.append(None)
            continue
        shapes.append({d: dims.setdefault(sym, torch.export.Dim(sym)) for d, sym in axes.items()})
    return tuple(shapes)


def size_one_warnings(spec: ExportSpec, inputs: Sequence[torch.Tensor]) -> list[str]:
    """Dynamic axes whose example size is 0 or 1: the dynamo exporter specializes them."""
    out = []
    for name, tensor in zip(spec.input_names, inputs):
        for dim, sym in spec.dynamic_axes.get(name, {}).items():
            if dim < tensor.dim() and tensor.shape[dim] in (0, 1):
                out.append(
                    f"{name} dimension {dim} ({sym!r}) is {tensor.shape[dim]} in the example: exporters specialize "
                    "sizes 0 and 1, so the graph may only run at that size. Export from an example with size >= 2."
                )
    return out


def _stage_of(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "TorchExportError":
        return "capture"
    if name in ("ConversionError", "DispatchError", "GraphConstructionError", "UnsupportedOperatorError",
                "SymbolicValueError"):
        return "translate"
    return "export"


def _run_exporter(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec,
                  extra: dict[str, Any]) -> None:
    common: dict[str, Any] = dict(
        input_names=list(spec.input_names), output_names=list(spec.output_names),
        opset_version=spec.opset, verbose=False,
    )
    if spec.exporter == "dynamo":
        torch.onnx.export(model, inputs, str(path), dynamo=True, external_data=spec.external_data,
                          dynamic_shapes=dynamic_shapes_for(spec, inputs), optimize=True, **common, **extra)
    else:
        torch.onnx.export(model, inputs, str(path), dynamo=False, dynamic_axes=spec.dynamic_axes or None,
                          do_constant_folding=spec.do_constant_folding, **common, **extra)


def _extra_arguments(spec: ExportSpec | None, custom_translation_table: Any, custom_opsets: Any) -> dict[str, Any]:
    exporter = spec.exporter if spec is not None else "dynamo"
    extra: dict[str, Any] = {}
    if custom_translation_table:
        if exporter != "dynamo":
            raise SpecError(
                "custom_translation_table (onnxscript functions per torch op) is for the dynamo exporter, "
                f"received it with exporter={exporter!r}. Use exporter='dynamo', or register a symbolic "
                "function (torch.onnx.register_custom_op_symbolic) for the TorchScript exporter."
            )
        extra["custom_translation_table"] = dict(custom_translation_table)
    if custom_opsets:
        if exporter != "torchscript":
            raise SpecError(
                f"custom_opsets is for the TorchScript exporter, received it with exporter={exporter!r}. "
                "With the dynamo exporter the custom domain's opset comes from the onnxscript functions "
                "in custom_translation_table."
            )
        extra["custom_opsets"] = dict(custom_opsets)
    return extra


def export(
    model: nn.Module,
    example_inputs: Any,
    out: str | os.PathLike[str],
    *,
    spec: ExportSpec | None = None,
    use_cache: bool = True,
    custom_translation_table: dict[Any, Any] | None = None,
    custom_opsets: dict[str, int] | None = None,
) -> ExportResult:
    """Export ``model`` to ONNX at ``out`` following ``spec``.

    The spec is checked against the model first (see ``check_spec``). The file appears at
    ``out`` only when the export succeeded; a failure raises ``ExportError`` with the stage,
    the exception and the captured warnings, and leaves no file behind. Re-exporting an
    unchanged model (weights and code) with an unchanged spec and example returns the
    cached result (only while the files hold what that export wrote: their SHA-256 is checked).
    External data goes into one file ``<out>.<token>.data``, a fresh name per export, so the old
    pair stays whole until the new ``.onnx`` replaces the old one (see ``_export_files``). Safe from
    several threads: exports run one at a time and never while another thread runs a PyTorch model
    through the workbench; what torch prints meanwhile is in ``torch_output``, not on the screen.
    ``custom_translation_table`` (dynamo) and ``custom_opsets`` (TorchScript)
    pass through to ``torch.onnx.export``; exports that use them, and exports that rely on
    symbolics registered with ``torch.onnx.register_custom_op_symbolic``, should bypass the
    cache (``use_cache=False``), which cannot see those functions. Calls with either argument
    never read the cache.
    """
    check_module(model)
    inputs = as_input_tuple(example_inputs)
    target = _check_out(out)
    if spec is not None and not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec, received {type(spec).__name__}. Build one with wb.ExportSpec(...).")
    extra = _extra_arguments(spec, custom_translation_table, custom_opsets)
    with CAPTURE_LOCK, TORCH_LOCK.exclusive():  # lock order: CAPTURE_LOCK first (see _locks)
        # The key covers the spec as given: a hit means this exact call succeeded and was checked before.
        key = fingerprint(model, inputs, spec)
        if target.parent.is_dir():
            files.clean_stale(target.parent)  # what killed exports into this folder left behind
        cached = _cached(target, key) if use_cache and not extra else None
        if cached is not None:
            return cached
        spec = check_spec(model, inputs, spec=spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        return _export_atomically(model, inputs, target, spec, extra, key)


def _check_out(out: Any) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out must be a str or Path ending in .onnx, received {type(out).__name__}.")
    target = Path(out)
    if target.suffix != ".onnx":
        raise InvalidInputError(f"out should end in .onnx, received {str(target)!r}. Try {str(target)!r} + '.onnx'.")
    return target


def _cached(target: Path, key: str) -> ExportResult | None:
    """The result of an earlier export to ``target`` with the same fingerprint, if the file is unchanged."""
    side = files.read_sidecar(target) if target.exists() else None
    if not side or side.get("fingerprint") != key:
        return None
    return ExportResult(target, ExportSpec.from_dict(side["spec"]), side["duration_s"], list(side.get("warnings", [])),
                        side.get("torch_version", ""), side.get("onnx_version", ""), key, cached=True,
                        torch_output=str(side.get("torch_output", "")))


def _run_captured(model: nn.Module, inputs: tuple[torch.Tensor, ...], staged: Path, spec: ExportSpec,
                  extra: dict[str, Any], target: Path) -> tuple[list[str], str]:
    """Run the exporter into ``staged``: ``(its warnings, what it printed)``, or ``ExportError`` with the stage
    that failed. Other threads' warnings meanwhile are neither recorded nor swallowed (``hold_others``)."""
    failure: Exception | None = None
    with capture_warnings(hold_others=True) as caught:
        with captured_output() as cap, _QUIET_LOGS.override(logging.ERROR):
            try:
                _run_exporter(model, inputs, staged, spec, extra)
            except Exception as exc:
                failure = exc
    found = _unique_warnings(caught)
    found += [w for w in _printed_warnings(cap.text) if w not in found]
    if failure is not None:
        stage = _stage_of(failure)
        error = ExportError(
            f"The {spec.exporter} exporter failed at the {stage} stage for {type(model).__name__}: "
            f"{type(failure).__name__}: {_first_lines(str(failure))}. Nothing was written to {str(target)!r}. "
            "Run wb.diagnose(model, example_inputs, spec=spec) for the cause and a fix, or try the other exporter.",
            stage=stage, exception=failure, warnings=size_one_warnings(spec, inputs) + found,
        )
        error.torch_output = cap.text  # type: ignore[attr-defined]
        raise error from failure
    return found, cap.text


def _export_atomically(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: Path, spec: ExportSpec,
                       extra: dict[str, Any], key: str) -> ExportResult:
    """Export into a staging folder beside ``target``, then put the files in place (``_export_files``)."""
    with files.staging(target) as folder:
        staged = folder / target.name
        start = time.perf_counter()
        captured, printed = _run_captured(model, inputs, staged, spec, extra, target)
        captured = size_one_warnings(spec, inputs) + captured
        if not staged.exists():
            raise ExportError(f"The {spec.exporter} exporter returned without writing {staged.name}.",
                              stage="save", warnings=captured)
        captured += [w for w in opset_warnings(staged, spec) if w not in captured]
        files.finish(staged, target.name, spec)
        duration = time.perf_counter() - start
        data = files.place(staged, target, folder)
        result = ExportResult(target, spec, duration, captured, fingerprint=key, torch_output=printed)
        files.write_sidecar(target, {
            "fingerprint": key, "duration_s": duration, "warnings": captured, "spec": spec.to_dict(),
            "torch_version": result.torch_version, "onnx_version": result.onnx_version,
            "torch_output": printed[:_MAX_PRINTED]}, data, folder)
    return result


_MAX_PRINTED = 20_000
